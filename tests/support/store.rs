//! A store for orca: one real `mariadbd` on its own loopback address,
//! apart from the cluster orca manages, and the settings to reach it.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use orca::mysql::conn::Timeouts;
use orca::store::StoreConfig;
use orca_sandbox::mysqld::admin_credentials;
use orca_sandbox::{Mysqld, MysqldOptions};

pub struct StoreServer {
    pub mysqld: Mysqld,
}

impl StoreServer {
    pub async fn start() -> StoreServer {
        let mysqld = Mysqld::start(MysqldOptions::new(900))
            .await
            .expect("start the store's mariadbd");
        StoreServer { mysqld }
    }

    /// The DSN of database `db` there (no password: it is given apart).
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "mysql://{}@{}/{db}",
            admin_credentials().user,
            self.mysqld.key()
        )
    }

    /// The password of the DSN's user.
    pub fn password(&self) -> String {
        admin_credentials().password().to_string()
    }

    /// A configuration for database `db`, with short timeouts and retries
    /// so that a test does not wait on a dead store.
    pub fn config(&self, db: &str) -> StoreConfig {
        let mut c = StoreConfig::from_parts(&self.dsn(db), None).expect("a DSN");
        c.credentials = orca::mysql::Credentials::new(admin_credentials().user, self.password());
        c.timeouts = Timeouts {
            connect: Duration::from_millis(500),
            query: Duration::from_secs(5),
        };
        c.retry_min = Duration::from_millis(50);
        c.retry_max = Duration::from_millis(500);
        c
    }

    /// kill -9 of the store's server.
    pub fn kill(&mut self) {
        self.mysqld.kill().expect("kill the store");
    }

    /// Starts it again on the same address and data.
    pub async fn restart(&mut self) {
        self.mysqld.restart().await.expect("restart the store");
    }

    /// The first column of every row of `sql`, run in `db`, as text.
    pub async fn column(&self, db: &str, sql: &str) -> Vec<Option<String>> {
        let mut conn = orca::store::connect(&self.config(db))
            .await
            .expect("connect to the store");
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.expect(sql);
        let _ = conn.disconnect().await;
        // The text protocol: every value comes as text.
        rows.into_iter()
            .map(|mut r| r.take::<Option<String>, _>(0).flatten())
            .collect()
    }

    /// `SELECT COUNT(*) ...` in `db`; `None` while the store does not
    /// answer.
    pub async fn try_count(&self, db: &str, sql: &str) -> Option<u64> {
        let mut conn = orca::store::connect(&self.config(db)).await.ok()?;
        let n: Option<u64> = conn.query_first(sql).await.ok()?;
        let _ = conn.disconnect().await;
        n
    }

    /// `SELECT COUNT(*) ...` in `db`.
    pub async fn count(&self, db: &str, sql: &str) -> u64 {
        let mut conn = orca::store::connect(&self.config(db))
            .await
            .expect("connect to the store");
        let n: Option<u64> = conn.query_first(sql).await.expect(sql);
        let _ = conn.disconnect().await;
        n.unwrap_or(0)
    }
}
