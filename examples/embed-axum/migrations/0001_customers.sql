-- The application's own data: its customers, and what PassFort told it about them.

CREATE TABLE customers (
    -- The application's reference for the customer, given to PassFort as `customer_ref`.
    customer_ref TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- PassFort's profile id, when known: matches webhooks that carry no customer_ref.
    passfort_profile_id TEXT UNIQUE,
    -- The latest product application status PassFort reported (APPLIED, IN_REVIEW, APPROVED…).
    kyc_status TEXT,
    kyc_application_id TEXT,
    kyc_product TEXT,
    -- PassFort's `timestamp` of the webhook that set the status (Unix seconds).
    kyc_status_at INTEGER,
    kyc_status_webhook_id TEXT
);

-- One row per CHECK_COMPLETED webhook: the webhook id makes a redelivery a no-op.
CREATE TABLE check_results (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    customer_ref TEXT REFERENCES customers (customer_ref),
    profile_id TEXT,
    check_id TEXT,
    check_type TEXT,
    decision TEXT,
    result TEXT,
    completed_at INTEGER
);
CREATE INDEX check_results_by_customer ON check_results (customer_ref);

-- Webhooks the application did not act on, kept whole (without the secret) to look at later:
-- events it does not know yet, and status changes for customers it does not have.
CREATE TABLE kept_events (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    event TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL
);
