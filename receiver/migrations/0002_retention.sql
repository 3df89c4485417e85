-- Retention (`--keep-bodies`, `--keep-ids`): once processed for long enough, a webhook's body is
-- erased (`body` becomes '' and `body_erased_at_ms` is set); later its row is forgotten. The id,
-- event, positions and times stay until then, so a redelivery is still recognised. A dead letter
-- dropped by `dead-letter drop` is finished with `dropped_at_ms` set and its body erased at once.
ALTER TABLE webhooks ADD COLUMN body_erased_at_ms INTEGER;
ALTER TABLE webhooks ADD COLUMN dropped_at_ms INTEGER;

-- Bodies due for erasure, oldest processed first; never pending, leased or dead.
CREATE INDEX webhooks_body_due ON webhooks (processed_at_ms)
    WHERE state = 'done' AND body_erased_at_ms IS NULL;
-- Rows due to be forgotten, oldest processed first.
CREATE INDEX webhooks_done_at ON webhooks (processed_at_ms) WHERE state = 'done';
-- Bodies still kept: counted and aged by the status page.
CREATE INDEX webhooks_body_kept ON webhooks (seq) WHERE body_erased_at_ms IS NULL;
-- Replay by acknowledgement time; and a request row goes once its last webhook is forgotten.
CREATE INDEX webhooks_received_at ON webhooks (received_at_ms);
CREATE INDEX webhooks_by_request ON webhooks (request_seq);
CREATE INDEX requests_received_at ON requests (received_at_ms);

-- What pruning has done, across processes and restarts (the counters of /metrics).
CREATE TABLE retention (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    bodies_erased INTEGER NOT NULL DEFAULT 0,
    ids_forgotten INTEGER NOT NULL DEFAULT 0
);
INSERT INTO retention (singleton) VALUES (1);

-- Where a prune step parks the rows whose bodies it erases (never the bodies): SQLite reuses
-- the space of a row that shrinks in place but never merges the pages it leaves nearly empty,
-- so erasure deletes each row and inserts it again without its body, and the file shrinks.
-- Empty outside a prune step's transaction.
CREATE TABLE erasing (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT    NOT NULL,
    request_seq        INTEGER NOT NULL,
    position           INTEGER NOT NULL,
    event              TEXT    NOT NULL,
    state              TEXT    NOT NULL,
    attempts           INTEGER NOT NULL,
    received_at_ms     INTEGER NOT NULL,
    processed_at_ms    INTEGER,
    dropped_at_ms      INTEGER
);
