//! The JSONPath subset of printer columns and scale paths: `.a.b`,
//! `['a']`, `[0]`, `[-1]`, `[*]`, `.*`, and filters
//! `[?(@.type=="Ready")]` (`==`, `!=`, or a bare path for existence).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<Step>,
        op: Option<(bool, Value)>,
    },
}

/// A compiled path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

fn parse_steps(s: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if i < chars.len() && chars[i] == '*' {
                    steps.push(Step::All);
                    i += 1;
                    continue;
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                // find the matching ']' (filters may contain brackets in strings)
                let mut depth = 0;
                let mut j = i;
                let mut in_str: Option<char> = None;
                while j < chars.len() {
                    let c = chars[j];
                    if let Some(q) = in_str {
                        if c == q {
                            in_str = None;
                        }
                    } else if c == '"' || c == '\'' {
                        in_str = Some(c);
                    } else if c == '[' {
                        depth += 1;
                    } else if c == ']' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!("unterminated [ in {s:?}"));
                }
                let inner: String = chars[i + 1..j].iter().collect();
                let inner = inner.trim();
                i = j + 1;
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
                    steps.push(parse_filter(f.trim())?);
                } else if (inner.starts_with('\'') && inner.ends_with('\''))
                    || (inner.starts_with('"') && inner.ends_with('"'))
                {
                    steps.push(Step::Field(inner[1..inner.len() - 1].to_string()));
                } else if let Ok(n) = inner.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else {
                    return Err(format!("unsupported subscript [{inner}] in {s:?}"));
                }
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                // a leading bare name: "status.x"
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(steps)
}

fn parse_filter(f: &str) -> Result<Step, String> {
    let (lhs, op) = if let Some((l, r)) = f.split_once("==") {
        (l.trim(), Some((false, literal(r.trim())?)))
    } else if let Some((l, r)) = f.split_once("!=") {
        (l.trim(), Some((true, literal(r.trim())?)))
    } else {
        (f.trim(), None)
    };
    let Some(rest) = lhs.strip_prefix('@') else {
        return Err(format!("filter must start with @: {f:?}"));
    };
    Ok(Step::Filter {
        path: parse_steps(rest)?,
        op,
    })
}

fn literal(s: &str) -> Result<Value, String> {
    if (s.starts_with('"') && s.ends_with('"') && s.len() >= 2)
        || (s.starts_with('\'') && s.ends_with('\'') && s.len() >= 2)
    {
        return Ok(Value::String(s[1..s.len() - 1].to_string()));
    }
    if s == "true" || s == "false" {
        return Ok(Value::Bool(s == "true"));
    }
    serde_json::from_str::<serde_json::Number>(s)
        .map(Value::Number)
        .map_err(|_| format!("unsupported literal {s:?}"))
}

fn eval_steps<'a>(steps: &[Step], roots: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut cur = roots;
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(name) => {
                    if let Some(x) = v.get(name.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Value::Array(a) = v {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if idx >= 0
                            && let Some(x) = a.get(idx as usize)
                        {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter { path, op } => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        let found = eval_steps(path, vec![item]);
                        let keep = match op {
                            None => !found.is_empty(),
                            Some((negate, lit)) => {
                                let eq = found.iter().any(|f| loose_eq(f, lit));
                                eq != *negate
                            }
                        };
                        if keep {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl JsonPath {
    /// Compiles a path such as `.status.conditions[?(@.type=="Ready")].status`;
    /// surrounding `{}` are accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s);
        let s = s.strip_prefix('$').unwrap_or(s);
        Ok(JsonPath(parse_steps(s)?))
    }

    /// Every value the path selects.
    pub fn find<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        eval_steps(&self.0, vec![v])
    }

    /// The first value selected.
    pub fn first<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.find(v).into_iter().next()
    }

    /// The plain field names of a simple path (`.spec.replicas`), for
    /// writing through it; `None` when the path has subscripts.
    pub fn fields(&self) -> Option<Vec<String>> {
        self.0
            .iter()
            .map(|s| match s {
                Step::Field(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Text of a value as `kubectl` prints a JSONPath result.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_filters() {
        let v = json!({
            "spec": {"replicas": 3, "m": {"a.b": 1}},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Healthy", "status": "True"}
            ]}
        });
        let p = |s: &str| JsonPath::parse(s).unwrap();
        assert_eq!(p(".spec.replicas").first(&v), Some(&json!(3)));
        assert_eq!(
            p(".status.conditions[?(@.type==\"Healthy\")].status").first(&v),
            Some(&json!("True"))
        );
        assert_eq!(
            p(".status.conditions[?(@.type!=\"Healthy\")].type").first(&v),
            Some(&json!("Ready"))
        );
        assert_eq!(
            p(".status.conditions[-1].type").first(&v),
            Some(&json!("Healthy"))
        );
        assert_eq!(p(".status.conditions[*].type").find(&v).len(), 2);
        assert_eq!(p("{.spec.m['a.b']}").first(&v), Some(&json!(1)));
        assert_eq!(p(".spec.missing").first(&v), None);
        assert_eq!(
            p(".spec.replicas").fields(),
            Some(vec!["spec".into(), "replicas".into()])
        );
    }
}
