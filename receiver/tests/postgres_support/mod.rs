//! Helpers shared by the PostgreSQL tests: a fresh database per test on the machine's server.
//!
//! The server is `postgres://postgres@127.0.0.1:5432` (trust auth), or `PASSFORT_TEST_POSTGRES`
//! when set. When it cannot be reached the tests fail, loudly: they are never skipped.
#![allow(dead_code)]

use std::time::Duration;

/// The server the tests run against, without a database name.
pub fn server() -> String {
    std::env::var("PASSFORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database created for one test and dropped (connections and all) when this is dropped,
/// whether the test passed or panicked.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    let url = format!("{}/postgres", server());
    match sqlx::PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {url}: {e}. These tests need it: start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
             (or set PASSFORT_TEST_POSTGRES)"
        ),
    }
}

impl TestDatabase {
    /// Creates `pf_test_<random>`.
    pub async fn create() -> Self {
        let name = format!("pf_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = format!("{}/{name}", server());
        Self { url, name }
    }

    /// A fresh schema in this database and the URL whose connections use it: a cheap fresh
    /// store (creating and dropping databases costs a checkpoint each).
    pub async fn schema(&self, schema: &str) -> String {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE SCHEMA {schema}: {e}"));
        let _ = conn.close().await;
        format!("{}?options[search_path]={schema}", self.url)
    }

    /// The URL through another host:port (e.g. a proxy), same user and database.
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let server = server();
        let user = server
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(user, _)| user.to_owned())
            .unwrap_or_else(|| "postgres".to_owned());
        format!("postgres://{user}@{addr}/{}", self.name)
    }

    /// Ends every session on this database, as a server restart or fail-over would.
    pub async fn terminate_sessions(&self) -> u64 {
        let mut conn = admin().await;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: Drop may run inside (or outside) the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = admin().await;
                tokio::time::timeout(
                    Duration::from_secs(30),
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn),
                )
                .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(Ok(_)))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A TCP proxy in front of the PostgreSQL server that a test can take down and bring back,
/// without touching the server other tests use.
pub async fn outage() -> passfort_receiver::testing::TcpOutage {
    let upstream = server()
        .rsplit_once('@')
        .map(|(_, host)| host.to_owned())
        .unwrap_or_else(|| "127.0.0.1:5432".to_owned());
    passfort_receiver::testing::TcpOutage::start(upstream)
        .await
        .unwrap()
}

/// A receiver served over loopback HTTP on `store`, and a worker with a recording handler on
/// the same store, both on `clock`: what the outage and restart tests put under a failing
/// database.
pub struct LiveReceiver {
    /// The webhook URL.
    pub url: String,
    /// Everything the worker handed on.
    pub handler: passfort_receiver::testing::RecordingHandler,
    /// The worker, stepped by the test.
    pub worker: passfort_receiver::Worker,
}

impl LiveReceiver {
    /// Serves a receiver on `store` at a free loopback port and builds a worker named `worker`.
    pub async fn start(
        store: passfort_receiver::store::PostgresStore,
        clock: passfort_clock::VirtualClock,
    ) -> Self {
        let receiver = passfort_receiver::Receiver::builder()
            .secrets(
                passfort_receiver::SecretSet::single(passfort_receiver::testing::SECRET).unwrap(),
            )
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}{}",
            listener.local_addr().unwrap(),
            receiver.path()
        );
        let router = receiver.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let handler = passfort_receiver::testing::RecordingHandler::new();
        let worker = passfort_receiver::Worker::builder()
            .store(store)
            .handler(handler.clone())
            .clock(clock)
            .name("worker")
            .build()
            .unwrap();
        Self {
            url,
            handler,
            worker,
        }
    }
}
