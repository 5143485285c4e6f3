use super::*;

/// What orca knows of one pod.
#[derive(Debug, Clone)]
pub struct PodView {
    pub name: String,
    pub ordinal: Option<u32>,
    pub key: Option<InstanceKey>,
    pub ready: bool,
    pub deleting: bool,
    pub restarting: bool,
    pub role_label: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodView {
    /// What orca knows of `pod`, a pod of the StatefulSet `set`.
    pub(super) fn of(pod: &Pod, set: &str) -> PodView {
        let name = pod.name_any();
        let ordinal = pod_ordinal(set, &name);
        let status = pod.status.as_ref();
        let key = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
            .map(|ip| InstanceKey::new(ip, 3306));
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let restarting = status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.state
                        .as_ref()
                        .is_some_and(|st| st.waiting.is_some() || st.terminated.is_some())
                })
            });
        PodView {
            name,
            ordinal,
            key,
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            restarting,
            role_label: pod.labels().get(label::ROLE).cloned(),
            annotations: pod.annotations().clone(),
        }
    }
}

pub(super) fn creds_from(secret: &Secret) -> Result<(Credentials, Credentials), WorkerError> {
    let get = |k: &str| -> Result<String, WorkerError> {
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let string = secret.string_data.as_ref().and_then(|d| d.get(k)).cloned();
        data.or(string).filter(|s| !s.is_empty()).ok_or_else(|| {
            WorkerError::Credentials(format!("the Secret {} has no key {k}", secret.name_any()))
        })
    };
    Ok((
        Credentials::new("root", get(secret_keys::ROOT_PASSWORD)?),
        Credentials::new(REPL_USER, get(secret_keys::REPL_PASSWORD)?),
    ))
}
