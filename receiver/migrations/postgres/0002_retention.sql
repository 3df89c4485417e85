-- Retention (`--keep-bodies`, `--keep-ids`): same meaning as the SQLite schema
-- (`../0002_retention.sql`). Once processed for long enough, a webhook's body is erased
-- (`body` becomes '' and `body_erased_at_ms` is set); later its row is forgotten. A dead letter
-- dropped by `dead-letter drop` is finished with `dropped_at_ms` set and its body erased at once.
ALTER TABLE webhooks ADD COLUMN body_erased_at_ms BIGINT, ADD COLUMN dropped_at_ms BIGINT;

-- Bodies due for erasure, oldest processed first; never pending, leased or dead.
CREATE INDEX webhooks_body_due ON webhooks (processed_at_ms)
    WHERE state = 'done' AND body_erased_at_ms IS NULL;
-- Bodies still kept: counted and aged by the status page.
CREATE INDEX webhooks_body_kept ON webhooks (seq) WHERE body_erased_at_ms IS NULL;
-- Replay by acknowledgement time. (Rows due to be forgotten use `webhooks_done`.)
CREATE INDEX webhooks_received_at ON webhooks (received_at_ms);
CREATE INDEX requests_received_at ON requests (received_at_ms);

-- What pruning has done, across replicas and restarts (the counters of /metrics).
CREATE TABLE retention (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    bodies_erased BIGINT  NOT NULL DEFAULT 0,
    ids_forgotten BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO retention (singleton) VALUES (1);
