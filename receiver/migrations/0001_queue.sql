-- The queue of acknowledged webhooks. Secrets are never stored: `body` is the webhook object as
-- received minus `secret`.

-- One row per accepted request: the unit of arrival.
CREATE TABLE requests (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at_ms INTEGER NOT NULL,
    shape          TEXT    NOT NULL CHECK (shape IN ('single', 'array')),
    webhooks       INTEGER NOT NULL,
    stored         INTEGER NOT NULL DEFAULT 0,
    duplicates     INTEGER NOT NULL DEFAULT 0,
    conflicts      INTEGER NOT NULL DEFAULT 0
);

-- One row per distinct webhook id. `seq` is the arrival order (ids are UUIDs: never sortable).
CREATE TABLE webhooks (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT    NOT NULL UNIQUE,
    request_seq        INTEGER NOT NULL REFERENCES requests (seq),
    position           INTEGER NOT NULL,
    event              TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER,
    lease_owner        TEXT,
    lease_until_ms     INTEGER,
    last_error         TEXT,
    received_at_ms     INTEGER NOT NULL,
    processed_at_ms    INTEGER,
    failed_at_ms       INTEGER
);

-- The head of the queue is found through this partial index, however many are done.
CREATE INDEX webhooks_open ON webhooks (seq) WHERE state IN ('pending', 'leased');
CREATE INDEX webhooks_dead ON webhooks (seq) WHERE state = 'dead';

-- Every failed attempt, for "recent failures".
CREATE TABLE failures (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_seq  INTEGER NOT NULL REFERENCES webhooks (seq),
    attempt      INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    failed_at_ms INTEGER NOT NULL
);
CREATE INDEX failures_by_webhook ON failures (webhook_seq);

-- The last received and last processed webhook, as PassFort advises a receiver to remember.
CREATE TABLE progress (
    singleton              INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_received_id       TEXT,
    last_received_at_ms    INTEGER,
    last_processed_id      TEXT,
    last_processed_at_ms   INTEGER
);
INSERT INTO progress (singleton) VALUES (1);
