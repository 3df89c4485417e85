//! From a database URL to a store: which backend a URL names, and the schema brought up to date.

#[cfg(feature = "postgres")]
use super::PostgresStore;
use super::{Ordering, SharedStore, SqliteStore, StoreError};
use std::sync::Arc;

/// Opens the store a database URL names (`sqlite://PATH`, created if absent, or `sqlite::memory:`;
/// `postgres://…` or `postgresql://…` with the `postgres` feature), in global order.
pub async fn open(url: &str) -> Result<SharedStore, StoreError> {
    open_with(url, Ordering::Global).await
}

/// Opens the store a database URL names, leasing in `ordering` (per-profile: PostgreSQL only).
pub async fn open_with(url: &str, ordering: Ordering) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        if ordering != Ordering::Global {
            return Err(StoreError::UnsupportedOrdering {
                ordering,
                backend: "SQLite",
            });
        }
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if is_postgres(url) {
        #[cfg(feature = "postgres")]
        {
            Ok(Arc::new(PostgresStore::open_with(url, ordering).await?))
        }
        #[cfg(not(feature = "postgres"))]
        {
            Err(StoreError::UnsupportedUrl(format!(
                "{} (this build has no `postgres` feature)",
                crate::redact::redact_url(url)
            )))
        }
    } else {
        Err(StoreError::UnsupportedUrl(crate::redact::redact_url(url)))
    }
}

/// Brings the schema of the database `url` names up to date (what `open` also does), safely
/// from several processes at once.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    if is_postgres(url) {
        #[cfg(feature = "postgres")]
        {
            return PostgresStore::migrate(url).await;
        }
    }
    let store = open(url).await?;
    drop(store);
    Ok(())
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file a `sqlite:` URL names, if it names one (not `sqlite::memory:`).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        None
    } else {
        Some(std::path::PathBuf::from(path))
    }
}
