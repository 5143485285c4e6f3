//! Local replication topologies: several [`Mysqld`] wired by GTID into a
//! requested shape.

use std::time::{Duration, Instant};

use futures::future::try_join_all;

use super::mysqld::{Mysqld, MysqldError, MysqldOptions, admin_credentials, repl_credentials};
use orca::mysql::Dialect;
use orca::mysql::conn::Timeouts;
use orca::mysql::probe::probe;
use orca::topology::instance::IoThreadState;

/// Who replicates from whom: `sources[i]` is the index of instance `i`'s
/// source, `None` for a primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub sources: Vec<Option<usize>>,
}

impl Shape {
    /// One primary (index 0) and `replicas` replicas of it.
    pub fn primary_with_replicas(replicas: usize) -> Shape {
        let mut sources = vec![None];
        sources.extend(std::iter::repeat_n(Some(0), replicas));
        Shape { sources }
    }

    /// A chain 0 → 1 → … → n-1: every instance replicates from the one
    /// before it.
    pub fn chain(len: usize) -> Shape {
        Shape {
            sources: (0..len).map(|i| i.checked_sub(1)).collect(),
        }
    }

    /// Two co-primaries replicating from each other, plus `replicas`
    /// replicas of the first.
    pub fn co_primaries(replicas: usize) -> Shape {
        let mut sources = vec![Some(1), Some(0)];
        sources.extend(std::iter::repeat_n(Some(0), replicas));
        Shape { sources }
    }

    /// Parses `0,0,1` style lists (`-` for a primary), as the `sandbox`
    /// command line takes them.
    pub fn parse(s: &str) -> Result<Shape, String> {
        let sources = s
            .split(',')
            .map(|p| match p.trim() {
                "-" | "" => Ok(None),
                n => n
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| format!("{n:?} is not an instance index")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shape = Shape { sources };
        shape.check()?;
        Ok(shape)
    }

    fn check(&self) -> Result<(), String> {
        for (i, s) in self.sources.iter().enumerate() {
            match s {
                Some(j) if *j >= self.sources.len() => {
                    return Err(format!(
                        "instance {i} replicates from {j}, which does not exist"
                    ));
                }
                Some(j) if *j == i => return Err(format!("instance {i} replicates from itself")),
                _ => {}
            }
        }
        Ok(())
    }

    /// Instances in a replication cycle (co-primaries).
    pub fn in_cycle(&self, i: usize) -> bool {
        let mut cur = self.sources[i];
        for _ in 0..self.sources.len() {
            match cur {
                Some(j) if j == i => return true,
                Some(j) => cur = self.sources[j],
                None => return false,
            }
        }
        false
    }
}

/// A running local topology. Instance `i` has `server_id` `i + 1`.
#[derive(Debug)]
pub struct LocalCluster {
    pub instances: Vec<Mysqld>,
    pub shape: Shape,
}

impl LocalCluster {
    /// Starts every instance (concurrently), then wires replication and
    /// waits until every replica's IO thread has connected.
    pub async fn start(shape: Shape) -> Result<LocalCluster, MysqldError> {
        Self::start_with(shape, |_, o| o).await
    }

    /// Like [`LocalCluster::start`], letting `tune` adjust each instance's
    /// options (by index) before it starts.
    pub async fn start_with(
        shape: Shape,
        tune: impl Fn(usize, MysqldOptions) -> MysqldOptions,
    ) -> Result<LocalCluster, MysqldError> {
        shape.check().map_err(MysqldError::Template)?;
        let starts = (0..shape.sources.len()).map(|i| {
            let mut o = MysqldOptions::new(i as u32 + 1);
            o.read_only = shape.sources[i].is_some() && !shape.in_cycle(i);
            if shape.in_cycle(i) {
                o.gtid_domain_id = i as u32 + 1;
            }
            Mysqld::start(tune(i, o))
        });
        let instances = try_join_all(starts).await?;
        let cluster = LocalCluster { instances, shape };
        for i in 0..cluster.instances.len() {
            if let Some(src) = cluster.shape.sources[i] {
                cluster.replicate(i, src).await?;
            }
        }
        for i in 0..cluster.instances.len() {
            if cluster.shape.sources[i].is_some() {
                cluster
                    .wait_io_connected(i, Duration::from_secs(20))
                    .await?;
            }
        }
        Ok(cluster)
    }

    /// Points instance `replica` at instance `source` with GTID
    /// positioning and starts replication.
    pub async fn replicate(&self, replica: usize, source: usize) -> Result<(), MysqldError> {
        let src = self.instances[source].key();
        let r = &self.instances[replica];
        let snap = probe(&r.key(), &admin_credentials(), Timeouts::default())
            .await
            .map_err(|source| MysqldError::Sql { ip: r.ip(), source })?;
        let dialect = Dialect {
            flavor: snap.flavor,
            version: snap.version,
        };
        r.exec(dialect.stop_replica()).await?;
        r.exec(&dialect.change_source_gtid(&src, &repl_credentials()))
            .await?;
        r.exec(dialect.start_replica()).await
    }

    async fn wait_io_connected(&self, i: usize, limit: Duration) -> Result<(), MysqldError> {
        let m = &self.instances[i];
        let deadline = Instant::now() + limit;
        loop {
            let snap = probe(&m.key(), &admin_credentials(), Timeouts::default())
                .await
                .map_err(|source| MysqldError::Sql { ip: m.ip(), source })?;
            let io = snap.replica.as_ref().map(|r| r.io_running);
            if io == Some(IoThreadState::Yes) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MysqldError::NotReady {
                    ip: m.ip(),
                    reason: format!(
                        "replication did not connect within {limit:?} (IO thread {io:?})"
                    ),
                    log: m.error_log_path().display().to_string(),
                    tail: m.error_log_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            Shape::primary_with_replicas(2).sources,
            vec![None, Some(0), Some(0)]
        );
        assert_eq!(Shape::chain(3).sources, vec![None, Some(0), Some(1)]);
        let co = Shape::co_primaries(1);
        assert!(co.in_cycle(0) && co.in_cycle(1) && !co.in_cycle(2));
        assert_eq!(Shape::parse("-,0,1").unwrap(), Shape::chain(3));
        assert!(Shape::parse("-,5").is_err());
        assert!(Shape::parse("-,1").is_err());
        assert!(Shape::parse("-,x").is_err());
    }
}
