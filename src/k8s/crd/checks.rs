//! Small checks shared by the `validate()` methods of the specs.

use regex::Regex;

use super::schema::QUANTITY_PATTERN;

/// Problems found while validating, each `"<field path>: <message>"`.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    pub(crate) fn push(&mut self, path: &str, message: impl AsRef<str>) {
        self.0.push(format!("{path}: {}", message.as_ref()));
    }

    pub(crate) fn extend(&mut self, problems: Vec<String>) {
        self.0.extend(problems);
    }

    pub(crate) fn into_result(self) -> Result<(), Vec<String>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// A Kubernetes quantity such as `10Gi`, `500m` or `1e3`.
pub(crate) fn check_quantity(p: &mut Problems, path: &str, value: &str) {
    match Regex::new(QUANTITY_PATTERN) {
        Ok(re) if re.is_match(value) => {}
        Ok(_) => p.push(
            path,
            format!("{value:?} is not a quantity (examples: 10Gi, 500Mi, 1e9)"),
        ),
        Err(e) => p.push(path, format!("cannot check quantity: {e}")),
    }
}

/// A DNS-1123 subdomain, the rule for names of most Kubernetes objects.
pub(crate) fn check_dns_subdomain(p: &mut Problems, path: &str, value: &str) {
    if !is_dns_subdomain(value) {
        p.push(
            path,
            format!(
                "{value:?} is not a valid name: at most 253 characters, lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            ),
        );
    }
}

pub(crate) fn is_dns_subdomain(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        for ok in ["a", "my-secret", "a.b-c.d", "0abc9"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", ".a", "a_b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        let mut p = Problems::default();
        for ok in [
            "1Gi", "500Mi", "1", "1.5", ".5", "1e3", "100m", "+1k", "1E-3",
        ] {
            check_quantity(&mut p, "x", ok);
        }
        assert!(p.into_result().is_ok());
        for bad in ["", "1GB", "Gi", "1 Gi", "one", "1.2.3"] {
            let mut p = Problems::default();
            check_quantity(&mut p, "x", bad);
            assert!(p.into_result().is_err(), "{bad}");
        }
    }
}
