use super::*;

impl Worker {
    /// First start: pod 0 becomes the primary (unless replication already
    /// exists, say after an operator restart), the replication account is
    /// created on it, and every other pod replicates from it.
    pub(super) async fn bootstrap(
        &mut self,
        cluster: &MySQLCluster,
        pods: &[PodView],
        root: &Credentials,
        repl: &Credentials,
        app: Option<&Credentials>,
    ) -> Result<Option<Duration>, WorkerError> {
        let wanted = cluster.spec.replicas.max(1) as usize;
        let ready: Vec<&PodView> = pods
            .iter()
            .filter(|p| p.ready && p.key.is_some() && !p.deleting)
            .collect();
        if ready.len() < wanted {
            self.patch_status(json!({
                "observedGeneration": cluster.metadata.generation,
                "conditions": conditions(cluster, &[
                    (condition::RECONCILING, true, "WaitingForPods", format!("{} of {} pods ready", ready.len(), wanted)),
                    (condition::AVAILABLE, false, "Bootstrapping", "no primary yet".into()),
                ]),
            }))
            .await?;
            return Ok(Some(Duration::from_secs(1)));
        }
        self.engine_mut().round().await;
        let topo = self.engine_mut().topology().clone();
        // Replication already set up: adopt its primary.
        let existing = topo
            .nodes
            .values()
            .find(|n| n.role == Role::Primary && !n.replicas.is_empty() && n.reachable())
            .map(|n| n.key.clone());
        let primary_pod = match existing.as_ref().map(|k| pod_of(pods, k)) {
            Some(p) => p,
            None => {
                let Some(first) = ready.iter().min_by_key(|p| p.ordinal.unwrap_or(u32::MAX)) else {
                    return Ok(Some(Duration::from_secs(1)));
                };
                first.name.clone()
            }
        };
        let Some(pkey) = pods
            .iter()
            .find(|p| p.name == primary_pod)
            .and_then(|p| p.key.clone())
        else {
            return Ok(Some(Duration::from_secs(1)));
        };
        if existing.is_none() {
            let semi = cluster.spec.semi_sync.as_ref().is_some_and(|s| s.enabled);
            let t = Timeouts::default();
            let mut conn = connect(&pkey, root, t).await.map_err(|e| {
                WorkerError::Credentials(format!("connecting to {primary_pod}: {e}"))
            })?;
            let user = format!("'{REPL_USER}'@'%'");
            let pw = crate::mysql::dialect::quote(repl.password());
            let mut statements = vec![
                format!("CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {pw}"),
                format!("ALTER USER {user} IDENTIFIED BY {pw}"),
                format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user}"),
            ];
            // The application account too, when it is in order; if not,
            // ensure_app_account reports it.
            let dbs = &cluster.spec.app_databases;
            let app_sql = app.and_then(|a| accounts::statements(&a.user, a.password(), dbs).ok());
            let app_secrets = app.map(|a| accounts::secrets(a.password()));
            statements.extend(app_sql.iter().flatten().cloned());
            if semi {
                statements.push(match objects::flavor(cluster) {
                    crate::topology::Flavor::MariaDb => {
                        "SET GLOBAL rpl_semi_sync_master_enabled = ON".into()
                    }
                    crate::topology::Flavor::MySql => {
                        "SET GLOBAL rpl_semi_sync_source_enabled = ON".into()
                    }
                });
            }
            statements.push(match objects::flavor(cluster) {
                crate::topology::Flavor::MariaDb => "SET GLOBAL read_only = OFF".into(),
                crate::topology::Flavor::MySql => {
                    "SET GLOBAL super_read_only = OFF, GLOBAL read_only = OFF".into()
                }
            });
            for sql in statements {
                exec(&mut conn, &pkey, t.query, "bootstrapping the primary", &sql)
                    .await
                    .map_err(|e| {
                        let mut secrets = vec![repl.password(), root.password()];
                        secrets.extend(app_secrets.iter().flatten().map(String::as_str));
                        let text = crate::mysql::conn::redact(&e.to_string(), &secrets);
                        WorkerError::Credentials(format!("bootstrapping {primary_pod}: {text}"))
                    })?;
            }
            let _ = tokio::time::timeout(t.query, conn.disconnect()).await;
            if let (Some(a), Some(_)) = (app, app_sql) {
                self.app_account = Some(accounts::fingerprint(&a.user, a.password(), dbs));
            }
        }
        self.event(
            cluster,
            false,
            "PrimaryElected",
            "Bootstrap",
            format!("{primary_pod} is the primary"),
        )
        .await;
        self.patch_status(json!({ "primary": primary_pod, "epoch": self.epoch }))
            .await?;
        self.join_replicas(cluster, pods, Some(&primary_pod)).await;
        self.apply_roles(cluster, pods, Some(&primary_pod)).await?;
        self.write_status(cluster, pods, Some(&primary_pod)).await?;
        Ok(Some(Duration::from_millis(500)))
    }
}
