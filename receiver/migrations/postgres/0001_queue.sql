-- The queue of acknowledged webhooks, shared by every receiver replica and worker on one
-- PostgreSQL database. Same shape and meaning as the SQLite schema (`../0001_queue.sql`), plus
-- `lane` for the per-profile ordering mode. Secrets are never stored: `body` is the webhook
-- object as received minus `secret`. Times are milliseconds since the Unix epoch, from the
-- caller's clock, never the server's.

-- Arrival positions of requests and of webhooks. A staging takes them while it holds the
-- staging lock (a transaction-level advisory lock), so they increase in commit order across
-- replicas, and a request's webhooks get one consecutive block.
CREATE SEQUENCE request_arrival AS BIGINT;
CREATE SEQUENCE webhook_arrival AS BIGINT;

-- One row per accepted request: the unit of arrival.
CREATE TABLE requests (
    seq            BIGINT  PRIMARY KEY,
    received_at_ms BIGINT  NOT NULL,
    shape          TEXT    NOT NULL CHECK (shape IN ('single', 'array')),
    webhooks       BIGINT  NOT NULL,
    stored         BIGINT  NOT NULL DEFAULT 0,
    duplicates     BIGINT  NOT NULL DEFAULT 0,
    conflicts      BIGINT  NOT NULL DEFAULT 0
);

-- One row per distinct webhook id (the UNIQUE constraint is the deduplication). `seq` is the
-- arrival order (ids are UUIDs: never sortable). `lane` is `data.profile_id` ('' when absent):
-- the unit of order in the per-profile mode.
CREATE TABLE webhooks (
    seq                BIGINT  PRIMARY KEY,
    id                 TEXT    NOT NULL UNIQUE,
    -- Deferred: a staging writes its webhooks first, then the request with its counts.
    request_seq        BIGINT  NOT NULL REFERENCES requests (seq) DEFERRABLE INITIALLY DEFERRED,
    position           BIGINT  NOT NULL,
    event              TEXT    NOT NULL,
    lane               TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT,
    lease_owner        TEXT,
    lease_until_ms     BIGINT,
    last_error         TEXT,
    received_at_ms     BIGINT  NOT NULL,
    processed_at_ms    BIGINT,
    failed_at_ms       BIGINT
);

-- The head of the queue (and of each lane) is found through these partial indexes, however
-- many webhooks are done.
CREATE INDEX webhooks_open ON webhooks (seq) WHERE state IN ('pending', 'leased');
CREATE INDEX webhooks_open_lane ON webhooks (lane, seq) WHERE state IN ('pending', 'leased');
CREATE INDEX webhooks_dead ON webhooks (seq) WHERE state = 'dead';
-- "Last processed" is the latest completion; "last received" is the highest position.
CREATE INDEX webhooks_done ON webhooks (processed_at_ms, seq) WHERE state = 'done';
CREATE INDEX webhooks_by_request ON webhooks (request_seq);

-- Every failed attempt, for "recent failures".
CREATE TABLE failures (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_seq  BIGINT  NOT NULL REFERENCES webhooks (seq),
    attempt      INTEGER NOT NULL,
    error        TEXT    NOT NULL,
    failed_at_ms BIGINT  NOT NULL
);
CREATE INDEX failures_by_webhook ON failures (webhook_seq);
