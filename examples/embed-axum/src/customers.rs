//! The application's own data: customers, their KYC status, their check results, and the
//! webhooks it kept without acting on them. Plain sqlx over SQLite, as in any axum app.
//!
//! Every write PassFort's webhooks cause is idempotent on the webhook id, because the receiver
//! hands webhooks on *at least* once: a crash after a write and before the receiver marked the
//! webhook done hands the same webhook over again.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;

/// Why a customer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CustomersError {
    /// The database failed.
    #[error("customer database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("customer database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A customer with this reference (or PassFort profile) already exists.
    #[error("customer {0} already exists")]
    Exists(String),
}

/// A customer as the application shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Customer {
    /// The application's reference, given to PassFort as `customer_ref`.
    pub customer_ref: String,
    /// Display name.
    pub name: String,
    /// PassFort's profile id, when known.
    pub passfort_profile_id: Option<String>,
    /// The latest product application status PassFort reported.
    pub kyc_status: Option<String>,
    /// The application that status belongs to.
    pub kyc_application_id: Option<String>,
    /// The product's alias.
    pub kyc_product: Option<String>,
    /// PassFort's timestamp of the change (Unix seconds).
    pub kyc_status_at: Option<i64>,
    /// The webhook that reported it.
    pub kyc_status_webhook_id: Option<String>,
}

/// What `POST /customers` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// The application's reference.
    pub customer_ref: String,
    /// Display name.
    pub name: String,
    /// PassFort's profile id, if the profile already exists.
    #[serde(default)]
    pub passfort_profile_id: Option<String>,
}

/// One recorded `CHECK_COMPLETED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CheckResult {
    /// The webhook that reported it.
    pub webhook_id: String,
    /// The customer, when one matched.
    pub customer_ref: Option<String>,
    /// PassFort's profile id.
    pub profile_id: Option<String>,
    /// PassFort's check id.
    pub check_id: Option<String>,
    /// E.g. `IDENTITY_CHECK`.
    pub check_type: Option<String>,
    /// E.g. `PASS`, `FAIL`, `ERROR`.
    pub decision: Option<String>,
    /// E.g. `Pass`, `Refer`.
    pub result: Option<String>,
    /// PassFort's timestamp (Unix seconds).
    pub completed_at: Option<i64>,
}

/// A webhook kept without acting on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct KeptEvent {
    /// PassFort's webhook id.
    pub webhook_id: String,
    /// The event name.
    pub event: String,
    /// Why it was not acted on.
    pub reason: String,
    /// The webhook's JSON (without the secret).
    pub payload: String,
}

/// The status change a `PRODUCT_STATUS_CHANGED` webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange<'a> {
    /// The webhook id.
    pub webhook_id: &'a str,
    /// The new status.
    pub status: &'a str,
    /// The application.
    pub application_id: Option<&'a str>,
    /// The product's alias.
    pub product: Option<&'a str>,
    /// PassFort's timestamp.
    pub at: Option<i64>,
}

/// The customers table and its neighbours. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Customers {
    pool: SqlitePool,
}

impl Customers {
    /// Opens (creating if absent) the SQLite database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self, CustomersError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// A private in-memory database (one connection, so every query sees the same data).
    pub async fn in_memory() -> Result<Self, CustomersError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, CustomersError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Adds a customer.
    pub async fn create(&self, new: &NewCustomer) -> Result<Customer, CustomersError> {
        let inserted = sqlx::query(
            "INSERT INTO customers (customer_ref, name, passfort_profile_id) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(&new.customer_ref)
        .bind(&new.name)
        .bind(&new.passfort_profile_id)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(CustomersError::Exists(new.customer_ref.clone()));
        }
        self.get(&new.customer_ref)
            .await?
            .ok_or_else(|| CustomersError::Database(sqlx::Error::RowNotFound))
    }

    /// Every customer, by reference.
    pub async fn list(&self) -> Result<Vec<Customer>, CustomersError> {
        Ok(
            sqlx::query_as::<_, Customer>("SELECT * FROM customers ORDER BY customer_ref")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One customer.
    pub async fn get(&self, customer_ref: &str) -> Result<Option<Customer>, CustomersError> {
        Ok(
            sqlx::query_as::<_, Customer>("SELECT * FROM customers WHERE customer_ref = ?")
                .bind(customer_ref)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The customer a webhook is about: by `customer_ref` first (the application's own
    /// reference), else by PassFort's `profile_id`.
    pub async fn find(
        &self,
        customer_ref: Option<&str>,
        profile_id: Option<&str>,
    ) -> Result<Option<Customer>, CustomersError> {
        if let Some(customer_ref) = customer_ref {
            if let Some(customer) = self.get(customer_ref).await? {
                return Ok(Some(customer));
            }
        }
        match profile_id {
            Some(profile_id) => Ok(sqlx::query_as::<_, Customer>(
                "SELECT * FROM customers WHERE passfort_profile_id = ?",
            )
            .bind(profile_id)
            .fetch_optional(&self.pool)
            .await?),
            None => Ok(None),
        }
    }

    /// Sets the customer's KYC status (and learns its profile id if it was unknown).
    /// Re-applying the same webhook changes nothing.
    pub async fn set_status(
        &self,
        customer_ref: &str,
        profile_id: Option<&str>,
        change: &StatusChange<'_>,
    ) -> Result<(), CustomersError> {
        sqlx::query(
            "UPDATE customers SET kyc_status = ?, kyc_application_id = ?, kyc_product = ?,
                 kyc_status_at = ?, kyc_status_webhook_id = ?,
                 passfort_profile_id = COALESCE(passfort_profile_id, ?)
             WHERE customer_ref = ?",
        )
        .bind(change.status)
        .bind(change.application_id)
        .bind(change.product)
        .bind(change.at)
        .bind(change.webhook_id)
        .bind(profile_id)
        .bind(customer_ref)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a check result once per webhook.
    pub async fn record_check(&self, check: &CheckResult) -> Result<(), CustomersError> {
        sqlx::query(
            "INSERT INTO check_results (webhook_id, customer_ref, profile_id, check_id,
                 check_type, decision, result, completed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(&check.webhook_id)
        .bind(&check.customer_ref)
        .bind(&check.profile_id)
        .bind(&check.check_id)
        .bind(&check.check_type)
        .bind(&check.decision)
        .bind(&check.result)
        .bind(check.completed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every recorded check, optionally for one customer, in the order they were recorded.
    pub async fn checks(
        &self,
        customer_ref: Option<&str>,
    ) -> Result<Vec<CheckResult>, CustomersError> {
        let query = match customer_ref {
            Some(_) => "SELECT * FROM check_results WHERE customer_ref = ? ORDER BY rowid",
            None => "SELECT * FROM check_results ORDER BY rowid",
        };
        let mut query = sqlx::query_as::<_, CheckResult>(query);
        if let Some(customer_ref) = customer_ref {
            query = query.bind(customer_ref);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Keeps a webhook the application did not act on, once per webhook.
    pub async fn keep(&self, kept: &KeptEvent) -> Result<(), CustomersError> {
        sqlx::query(
            "INSERT INTO kept_events (webhook_id, event, reason, payload) VALUES (?, ?, ?, ?)
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(&kept.webhook_id)
        .bind(&kept.event)
        .bind(&kept.reason)
        .bind(&kept.payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every kept webhook, in the order kept.
    pub async fn kept(&self) -> Result<Vec<KeptEvent>, CustomersError> {
        Ok(
            sqlx::query_as::<_, KeptEvent>("SELECT * FROM kept_events ORDER BY rowid")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
