//! NetworkPolicy (networking.k8s.io/v1) as the real server writes it:
//! the decoder's defaults (`policyTypes` from the rules, `protocol: TCP`
//! on ports), the empty fields its JSON encoding leaves out, and the
//! checks of `ValidateNetworkPolicySpec` with their wording. The sandbox
//! stores policies and serves them; nothing enforces them (every pod
//! listens on loopback).

use serde_json::{Map, Value, json};

use super::builtin::{LABEL_VALUE_MSG, SUBDOMAIN_MSG, is_label_value, is_subdomain};
use super::error::{FieldError, FieldErrorType, go_quote};

/// Defaults and validates a NetworkPolicy on create and on every update.
pub fn prepare(obj: &mut Value) -> Vec<FieldError> {
    let Some(root) = obj.as_object_mut() else {
        return Vec::new();
    };
    let spec = root.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    if let Some(spec) = spec.as_object_mut() {
        normalize_spec(spec);
        default_spec(spec);
    }
    validate_spec(&obj["spec"])
}

/// True for what an `omitempty` field of the Go types drops: null, `[]`,
/// `{}`.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn drop_empty(m: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if m.get(*k).is_some_and(is_empty) {
            m.remove(*k);
        }
    }
}

fn drop_null(m: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if m.get(*k).is_some_and(Value::is_null) {
            m.remove(*k);
        }
    }
}

fn objects_in<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn normalize_selector(sel: &mut Map<String, Value>) {
    drop_empty(sel, &["matchLabels", "matchExpressions"]);
}

/// What a decode and re-encode of the Go types does: `podSelector` is a
/// struct (always there), the other selectors and `ipBlock` pointers (an
/// empty one stays), lists and maps `omitempty`.
fn normalize_spec(spec: &mut Map<String, Value>) {
    let ps = spec.entry("podSelector").or_insert_with(|| json!({}));
    if ps.is_null() {
        *ps = json!({});
    }
    if let Some(ps) = ps.as_object_mut() {
        normalize_selector(ps);
    }
    drop_empty(spec, &["ingress", "egress", "policyTypes"]);
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in objects_in(spec, rules) {
            drop_empty(rule, &[peers, "ports"]);
            for peer in objects_in(rule, peers) {
                drop_null(peer, &["podSelector", "namespaceSelector", "ipBlock"]);
                for k in ["podSelector", "namespaceSelector"] {
                    if let Some(sel) = peer.get_mut(k).and_then(Value::as_object_mut) {
                        normalize_selector(sel);
                    }
                }
                if let Some(ipb) = peer.get_mut("ipBlock").and_then(Value::as_object_mut) {
                    drop_empty(ipb, &["except"]);
                }
            }
            for port in objects_in(rule, "ports") {
                drop_null(port, &["protocol", "port", "endPort"]);
            }
        }
    }
}

/// `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`.
fn default_spec(spec: &mut Map<String, Value>) {
    if !spec.contains_key("policyTypes") {
        let mut types = vec![json!("Ingress")];
        if spec.contains_key("egress") {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for rules in ["ingress", "egress"] {
        for rule in objects_in(spec, rules) {
            for port in objects_in(rule, "ports") {
                port.entry("protocol").or_insert_with(|| json!("TCP"));
            }
        }
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `ValidateNetworkPolicySpec`, in its order.
fn validate_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_selector(&spec["podSelector"], "spec.podSelector", &mut errs);
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(&spec[rules]).iter().enumerate() {
            let path = format!("spec.{rules}[{i}]");
            for (j, port) in items(&rule["ports"]).iter().enumerate() {
                validate_port(port, &format!("{path}.ports[{j}]"), &mut errs);
            }
            for (j, peer) in items(&rule[peers]).iter().enumerate() {
                validate_peer(peer, &format!("{path}.{peers}[{j}]"), &mut errs);
            }
        }
    }
    let types = items(&spec["policyTypes"]);
    if types.len() > 2 {
        // the value is printed as Go's %#v of the typed slice
        let quoted: Vec<String> = types
            .iter()
            .map(|t| go_quote(t.as_str().unwrap_or_default()))
            .collect();
        errs.push(FieldError::new(
            FieldErrorType::Invalid,
            "spec.policyTypes",
            None,
            &format!(
                "[]networking.PolicyType{{{}}}: may not specify more than two policyTypes",
                quoted.join(", ")
            ),
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
            errs.push(FieldError::not_supported(
                &format!("spec.policyTypes[{i}]"),
                t.clone(),
                &["Ingress".into(), "Egress".into()],
            ));
        }
    }
    errs
}

/// `IsValidPortNum`.
fn port_num_errors(n: i64) -> Vec<&'static str> {
    if (1..=65535).contains(&n) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive"]
    }
}

/// `IsValidPortName` (an IANA service name).
fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    } else if !name.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

/// `ValidateNetworkPolicyPort`.
fn validate_port(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(p) = port.get("protocol")
        && !matches!(p.as_str(), Some("TCP" | "UDP" | "SCTP"))
    {
        errs.push(FieldError::not_supported(
            &format!("{path}.protocol"),
            p.clone(),
            &["TCP".into(), "UDP".into(), "SCTP".into()],
        ));
    }
    let end = port.get("endPort");
    let end_path = format!("{path}.endPort");
    match port.get("port") {
        Some(Value::String(name)) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    &end_path,
                    e.clone(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in port_name_errors(name) {
                errs.push(FieldError::invalid(
                    &format!("{path}.port"),
                    json!(name),
                    msg,
                ));
            }
        }
        Some(p) => {
            let n = p.as_i64().unwrap_or(0);
            for msg in port_num_errors(n) {
                errs.push(FieldError::invalid(&format!("{path}.port"), json!(n), msg));
            }
            if let Some(e) = end {
                let en = e.as_i64().unwrap_or(0);
                if en < n {
                    errs.push(FieldError::invalid(
                        &end_path,
                        json!(en),
                        "must be greater than or equal to `port`",
                    ));
                }
                for msg in port_num_errors(en) {
                    errs.push(FieldError::invalid(&end_path, json!(en), msg));
                }
            }
        }
        None => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    &end_path,
                    e.clone(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// `ValidateNetworkPolicyPeer`.
fn validate_peer(peer: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for k in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(k) {
            count += 1;
            validate_selector(sel, &format!("{path}.{k}"), errs);
        }
    }
    let ip_block = peer.get("ipBlock");
    if let Some(ipb) = ip_block {
        count += 1;
        validate_ip_block(ipb, &format!("{path}.ipBlock"), errs);
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// A CIDR as `netutils.ParseCIDRSloppy` reads it (IPv4 octets may have
/// leading zeros): (is IPv6, the masked network, the prefix length).
fn parse_cidr(s: &str) -> Option<(bool, u128, u32)> {
    let (ip, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let len: u32 = len.parse().ok()?;
    let (v6, bits, addr) = if ip.contains(':') {
        let a: std::net::Ipv6Addr = ip.parse().ok()?;
        (true, 128, u128::from(a))
    } else {
        let parts: Vec<&str> = ip.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        let mut a: u128 = 0;
        for p in parts {
            if p.is_empty() || p.len() > 3 || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let octet: u8 = p.parse().ok()?;
            a = (a << 8) | u128::from(octet);
        }
        (false, 32, a)
    };
    if len > bits {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len)) >> (128 - bits)
    };
    Some((v6, addr & mask, len))
}

const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// `ValidateIPBlock`.
fn validate_ip_block(ipb: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let cidr = ipb["cidr"].as_str().unwrap_or_default();
    let cidr_path = format!("{path}.cidr");
    if cidr.is_empty() {
        errs.push(FieldError::required(&cidr_path, ""));
        return;
    }
    let Some((v6, net, len)) = parse_cidr(cidr) else {
        errs.push(FieldError::invalid(&cidr_path, json!(cidr), CIDR_MSG));
        return;
    };
    let bits = if v6 { 128 } else { 32 };
    for (i, e) in items(&ipb["except"]).iter().enumerate() {
        let epath = format!("{path}.except[{i}]");
        let text = e.as_str().unwrap_or_default();
        let Some((ev6, enet, elen)) = parse_cidr(text) else {
            errs.push(FieldError::invalid(&epath, json!(text), CIDR_MSG));
            continue;
        };
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (128 - len)) >> (128 - bits)
        };
        let inside = ev6 == v6 && enet & mask == net;
        if !inside || len >= elen {
            errs.push(FieldError::invalid(
                &epath,
                json!(text),
                "must be a strict subset of `cidr`",
            ));
        }
    }
}

const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `IsQualifiedName` (a label key).
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_subdomain(prefix) {
                    errs.push(format!("prefix part {SUBDOMAIN_MSG}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QNAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        errs.push(format!("name part {QNAME_MSG}"));
    }
    errs
}

/// `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters");
    }
    if !is_label_value(value) {
        errs.push(LABEL_VALUE_MSG);
    }
    errs
}

/// `ValidateLabelSelector` (metav1).
fn validate_selector(sel: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        let lpath = format!("{path}.matchLabels");
        for (k, v) in labels {
            for msg in qualified_name_errors(k) {
                errs.push(FieldError::invalid(&lpath, json!(k), &msg));
            }
            let value = v.as_str().unwrap_or_default();
            for msg in label_value_errors(value) {
                errs.push(FieldError::invalid(&lpath, json!(value), msg));
            }
        }
    }
    for (i, e) in items(&sel["matchExpressions"]).iter().enumerate() {
        let epath = format!("{path}.matchExpressions[{i}]");
        let values = items(&e["values"]);
        match e["operator"].as_str() {
            Some("In" | "NotIn") => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &format!("{epath}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            Some("Exists" | "DoesNotExist") => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &format!("{epath}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                &format!("{epath}.operator"),
                json!(e["operator"].as_str().unwrap_or_default()),
                "not a valid selector operator",
            )),
        }
        let key = e["key"].as_str().unwrap_or_default();
        for msg in qualified_name_errors(key) {
            errs.push(FieldError::invalid(
                &format!("{epath}.key"),
                json!(key),
                &msg,
            ));
        }
        for (j, v) in values.iter().enumerate() {
            let value = v.as_str().unwrap_or_default();
            for msg in label_value_errors(value) {
                errs.push(FieldError::invalid(
                    &format!("{epath}.values[{j}]"),
                    json!(value),
                    msg,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(obj: &mut Value) -> Vec<String> {
        prepare(obj).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_and_empty_fields_as_the_real_server_stores_them() {
        let mut np = json!({"metadata": {"name": "p"}});
        assert!(texts(&mut np).is_empty());
        assert_eq!(
            np["spec"],
            json!({"podSelector": {}, "policyTypes": ["Ingress"]})
        );

        let mut np = json!({"spec": {
            "podSelector": {"matchLabels": {}, "matchExpressions": null},
            "ingress": [{"from": [], "ports": [{"port": 3306}]}, {}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": []}, "podSelector": null}]}]
        }});
        assert!(texts(&mut np).is_empty());
        assert_eq!(
            np["spec"],
            json!({
                "podSelector": {},
                "ingress": [{"ports": [{"port": 3306, "protocol": "TCP"}]}, {}],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
                "policyTypes": ["Ingress", "Egress"]
            })
        );

        // given policyTypes are kept; an empty egress list is left out
        let mut np = json!({"spec": {"podSelector": {}, "egress": [], "policyTypes": ["Egress"]}});
        assert!(texts(&mut np).is_empty());
        assert_eq!(
            np["spec"],
            json!({"podSelector": {}, "policyTypes": ["Egress"]})
        );
    }

    #[test]
    fn policy_types_are_ingress_or_egress() {
        let mut np = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Foo"]}});
        assert_eq!(
            texts(&mut np),
            [
                "spec.policyTypes[1]: Unsupported value: \"Foo\": supported values: \"Ingress\", \"Egress\""
            ]
        );
        let mut np =
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]}});
        assert_eq!(
            texts(&mut np),
            [
                "spec.policyTypes: Invalid value: []networking.PolicyType{\"Ingress\", \"Egress\", \"Ingress\"}: may not specify more than two policyTypes"
            ]
        );
    }

    #[test]
    fn ports_are_checked_as_the_real_server_checks_them() {
        let mut np = json!({"spec": {"ingress": [{"ports": [
            {"protocol": "ICMP", "port": 0},
            {"port": 70000},
            {"port": "mysql", "endPort": 3310},
            {"port": 3306, "endPort": 3300},
            {"port": "3306"},
            {"endPort": 10},
            {"port": "my--port-"},
            {"protocol": "UDP", "port": 53, "endPort": 60}
        ]}]}});
        assert_eq!(
            texts(&mut np),
            [
                "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ingress[0].ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ingress[0].ports[2].endPort: Invalid value: 3310: may not be specified when `port` is non-numeric",
                "spec.ingress[0].ports[3].endPort: Invalid value: 3300: must be greater than or equal to `port`",
                "spec.ingress[0].ports[4].port: Invalid value: \"3306\": must contain at least one letter (a-z)",
                "spec.ingress[0].ports[5].endPort: Invalid value: 10: may not be specified when `port` is not specified",
                "spec.ingress[0].ports[6].port: Invalid value: \"my--port-\": must not contain consecutive hyphens",
                "spec.ingress[0].ports[6].port: Invalid value: \"my--port-\": must not begin or end with a hyphen",
            ]
        );
    }

    #[test]
    fn peers_ip_blocks_and_selectors() {
        let mut np = json!({"spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "Is"}]},
            "egress": [{"to": [
                {},
                {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}},
                {"ipBlock": {"cidr": "10.0.0.0/33"}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "11.0.0.0/16", "10.0.0.0/8", "::/64"]}},
                {"ipBlock": {}},
                {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]}]}},
                {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}}
            ]}]
        }});
        assert_eq!(
            texts(&mut np),
            [
                "spec.podSelector.matchExpressions[0].operator: Invalid value: \"Is\": not a valid selector operator",
                "spec.egress[0].to[0]: Required value: must specify a peer",
                "spec.egress[0].to[1]: Forbidden: may not specify both ipBlock and another peer",
                "spec.egress[0].to[2].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.egress[0].to[3].ipBlock.except[1]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`",
                "spec.egress[0].to[3].ipBlock.except[2]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
                "spec.egress[0].to[3].ipBlock.except[3]: Invalid value: \"::/64\": must be a strict subset of `cidr`",
                "spec.egress[0].to[4].ipBlock.cidr: Required value",
                "spec.egress[0].to[5].podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.egress[0].to[5].podSelector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ]
        );
    }

    #[test]
    fn selector_labels_are_label_keys_and_values() {
        let mut np = json!({"spec": {"podSelector": {"matchLabels": {"app": "db", "bad key": "ok", "k": "-v"}}}});
        assert_eq!(
            texts(&mut np),
            [
                format!(
                    "spec.podSelector.matchLabels: Invalid value: \"bad key\": name part {QNAME_MSG}"
                ),
                format!("spec.podSelector.matchLabels: Invalid value: \"-v\": {LABEL_VALUE_MSG}"),
            ]
        );
        let mut ok = json!({"spec": {"podSelector": {"matchLabels": {"kubernetes.io/metadata.name": "orca-system"}}}});
        assert!(texts(&mut ok).is_empty());
    }
}
