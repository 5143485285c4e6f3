//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`exists) and
//! field selectors (`=`, `==`, `!=` on a resource's selectable fields).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let v = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match self.op {
            Op::Eq | Op::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEq | Op::NotIn => !v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::Exists => v.is_some(),
            Op::NotExists => v.is_none(),
        }
    }
}

/// A parsed label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

fn split_top(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found '', expected: identifier in {s:?}"
                ));
            }
            let req = if let Some(k) = p.strip_prefix('!') {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::NotExists,
                    values: vec![],
                }
            } else if let Some((k, v)) = p.split_once("!=") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::NotEq,
                    values: vec![v.trim().to_string()],
                }
            } else if let Some((k, v)) = p.split_once("==") {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::Eq,
                    values: vec![v.trim().to_string()],
                }
            } else if let Some((k, v)) = p.split_once('=') {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::Eq,
                    values: vec![v.trim().to_string()],
                }
            } else if let Some(open) = p.find('(') {
                let head = p[..open].trim();
                let Some(body) = p[open + 1..].strip_suffix(')') else {
                    return Err(format!(
                        "unable to parse requirement: found '{p}', expected: ')'"
                    ));
                };
                let (key, op) = if let Some(k) = head.strip_suffix("notin") {
                    (k.trim(), Op::NotIn)
                } else if let Some(k) = head.strip_suffix("in") {
                    (k.trim(), Op::In)
                } else {
                    return Err(format!(
                        "unable to parse requirement: found '{head}', expected: in, notin, =, ==, !=, gt, lt"
                    ));
                };
                if !head.ends_with(" in") && !head.ends_with(" notin") {
                    return Err(format!(
                        "unable to parse requirement: found '{head}', expected: in, notin"
                    ));
                }
                let values: Vec<String> = body
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                Requirement {
                    key: key.to_string(),
                    op,
                    values,
                }
            } else {
                Requirement {
                    key: p.to_string(),
                    op: Op::Exists,
                    values: vec![],
                }
            };
            if !valid_key(&req.key) {
                return Err(format!(
                    "unable to parse requirement: <nil>: Invalid value: {:?}: name part must consist of alphanumeric characters, '-', '_' or '.'",
                    req.key
                ));
            }
            if let Some(bad) = req.values.iter().find(|v| !valid_value(v)) {
                return Err(format!(
                    "unable to parse requirement: values[0][{}]: Invalid value: {bad:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'",
                    req.key
                ));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement {
                    key: k.clone(),
                    op: Op::Eq,
                    values: vec![v.as_str().unwrap_or_default().to_string()],
                });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Op::In,
                    Some("NotIn") => Op::NotIn,
                    Some("Exists") => Op::Exists,
                    Some("DoesNotExist") => Op::NotExists,
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"));
                    }
                };
                reqs.push(Requirement { key, op, values });
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// A plain `map[string]string` selector (Services).
    pub fn from_map(m: &serde_json::Map<String, Value>) -> Self {
        LabelSelector(
            m.iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: Op::Eq,
                    values: vec![v.as_str().unwrap_or_default().to_string()],
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the labels of `obj` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.0.iter().all(|r| r.matches(labels))
    }

    /// The canonical string form (`labels.Selector.String()`), sorted by key.
    pub fn canonical(&self) -> String {
        let mut reqs = self.0.clone();
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        reqs.iter()
            .map(|r| {
                let mut vals = r.values.clone();
                vals.sort();
                match r.op {
                    Op::Eq => format!("{}={}", r.key, vals.join("")),
                    Op::NotEq => format!("{}!={}", r.key, vals.join("")),
                    Op::In => format!("{} in ({})", r.key, vals.join(",")),
                    Op::NotIn => format!("{} notin ({})", r.key, vals.join(",")),
                    Op::Exists => r.key.clone(),
                    Op::NotExists => format!("!{}", r.key),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One field selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldTerm>);

impl FieldSelector {
    /// Parses `fieldSelector`, refusing fields outside `allowed`.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in s.split(',') {
            let p = part.trim();
            let (field, value, negate) = if let Some((f, v)) = p.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector(terms))
    }

    /// The value the selector requires for `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|t| t.field == "metadata.name" && !t.negate)
            .map(|t| t.value.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|t| {
            let actual = field_value(obj, &t.field);
            (actual == t.value) != t.negate
        })
    }
}

/// The string value of a selectable field; missing fields read as "".
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "db", "role": "primary"}));
        for (sel, want) in [
            ("app=db", true),
            ("app==db", true),
            ("app!=db", false),
            ("app!=web", true),
            ("missing!=x", true),
            ("role in (primary, replica)", true),
            ("role notin (primary)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=db,role in (replica)", false),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("a=b,").is_err());
        assert!(LabelSelector::parse("role in (a").is_err());
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}]
        }))
        .unwrap();
        assert_eq!(s.canonical(), "a=1,b=2,c in (x,y)");
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let allowed = ["metadata.name", "status.phase"];
        assert!(
            FieldSelector::parse("metadata.name=a", &allowed)
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("status.phase!=Running", &allowed)
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=1", &allowed).is_err());
    }
}
