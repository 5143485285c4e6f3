//! The application account orca keeps on a cluster's servers: its name
//! and password from the credentials Secret (`app-username`,
//! `app-password`), its databases from `spec.appDatabases`. Pure: the
//! checks; the SQL is the dialect's, run by the executor on the primary
//! (`Step::EnsureAppAccount`).
//!
//! The account has every privilege on its databases and nothing else: no
//! global privilege (`SUPER`, `READ ONLY ADMIN`, `ALL ON *.*`), none that
//! lets it bypass `read_only`, so a replica and a fenced former primary
//! refuse its writes. Applications write with it, never as root: on
//! MariaDB `read_only` does not stop root.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::mysql::dialect::quote;

/// The application account's name when the Secret names none.
pub const DEFAULT_USER: &str = "app";
/// The application's database when the spec names none.
pub const DEFAULT_DATABASE: &str = "app";
/// The longest account name every server takes (MySQL's limit).
const MAX_USER_LEN: usize = 32;
/// The longest database name.
const MAX_DATABASE_LEN: usize = 64;
/// Schemas of the server itself: privileges on them would let the account
/// give itself any other (`mysql`), or mean nothing.
const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];
/// Accounts of the server and of orca, which the application account must
/// not be.
const RESERVED_USERS: [&str; 4] = [
    "root",
    "mariadb.sys",
    "mysql.sys",
    super::objects::REPL_USER,
];

/// Why `user` cannot be the application account, if it cannot.
pub fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(format!(
            "the application account name must have 1 to {MAX_USER_LEN} characters"
        ));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "the application account name {user:?} may hold only letters, digits, '_', '-' and '.'"
        ));
    }
    if RESERVED_USERS.iter().any(|r| r.eq_ignore_ascii_case(user)) || user.starts_with("mysql.") {
        return Err(format!(
            "{user:?} is an account of the server or of orca, not an application account"
        ));
    }
    Ok(())
}

/// Why `db` cannot be one of the application's databases, if it cannot.
pub fn check_database(db: &str) -> Result<(), String> {
    if db.is_empty() || db.len() > MAX_DATABASE_LEN {
        return Err(format!(
            "a database name must have 1 to {MAX_DATABASE_LEN} characters"
        ));
    }
    if !db
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    {
        return Err(format!(
            "{db:?} may hold only letters, digits, '_', '-' and '$' (no wildcards: name each database)"
        ));
    }
    if SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db)) {
        return Err(format!(
            "{db:?} is a schema of the server itself, not an application's"
        ));
    }
    Ok(())
}

/// Why `user` and `databases` cannot be the application account, if
/// they cannot. The statements are the dialect's
/// ([`Dialect::app_account`](crate::mysql::Dialect::app_account)), which
/// carry the password: whatever reports one of their errors must
/// [`redact`](crate::mysql::conn::redact) it (see [`secrets`]).
pub fn check(user: &str, databases: &[String]) -> Result<(), String> {
    check_user(user)?;
    for db in databases {
        check_database(db)?;
    }
    Ok(())
}

/// The forms of `password` an error may quote: as given, and as the
/// statements spell it.
pub fn secrets(password: &str) -> [String; 2] {
    let quoted = quote(password);
    let inner = quoted[1..quoted.len() - 1].to_string();
    [password.to_string(), inner]
}

/// A fingerprint of the account's wanted state, so that the worker runs
/// the statements again only when it changes (and once after it starts),
/// without keeping the password around for the comparison.
pub fn fingerprint(user: &str, password: &str, databases: &[String]) -> u64 {
    let mut h = DefaultHasher::new();
    (user, password, databases).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::{Credentials, Dialect};

    #[test]
    fn account_names() {
        // (name, accepted)
        let cases = [
            ("app", true),
            ("shop_rw", true),
            ("a.b-c", true),
            ("", false),
            ("root", false),
            ("ROOT", false),
            ("orca_repl", false),
            ("mariadb.sys", false),
            ("mysql.session", false),
            ("app'@'%", false),
            ("app user", false),
            ("a23456789012345678901234567890123", false),
        ];
        for (name, ok) in cases {
            assert_eq!(
                check_user(name).is_ok(),
                ok,
                "{name:?}: {:?}",
                check_user(name)
            );
        }
    }

    #[test]
    fn database_names() {
        let cases = [
            ("app", true),
            ("shop_2024", true),
            ("my-db", true),
            ("a$b", true),
            ("", false),
            ("mysql", false),
            ("MySQL", false),
            ("information_schema", false),
            ("performance_schema", false),
            ("sys", false),
            ("%", false),
            ("app%", false),
            ("a`b", false),
            ("a.b", false),
            ("a'b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_database(name).is_ok(), ok, "{name:?}");
        }
        assert!(check_database(&"d".repeat(64)).is_ok());
        assert!(check_database(&"d".repeat(65)).is_err());
    }

    #[test]
    fn the_account_is_checked_whole() {
        let dbs = vec!["app".to_string(), "shop_2".to_string()];
        assert_eq!(check("app", &dbs), Ok(()));
        assert_eq!(check("app", &[]), Ok(()));
        assert!(check("root", &dbs).is_err());
        assert!(check("app", &["mysql".to_string()]).is_err());
        assert!(check("app", &["app".to_string(), "a%".to_string()]).is_err());
    }

    #[test]
    fn redaction_covers_the_quoted_password() {
        let [raw, inner] = secrets(r"a'b\c");
        assert_eq!(raw, r"a'b\c");
        assert_eq!(inner, r"a\'b\\c");
        let dialect = Dialect::detect("10.11.6-MariaDB", None).unwrap();
        let sql = dialect
            .app_account(&Credentials::new("app", r"a'b\c"), &[])
            .unwrap()
            .join("; ");
        let shown = crate::mysql::conn::redact(&sql, &[&raw, &inner]);
        assert!(
            !shown.contains("a'b") && !shown.contains(r"a\'b"),
            "{shown}"
        );
    }

    #[test]
    fn fingerprints_change_with_any_part() {
        let dbs = vec!["app".to_string()];
        let f = fingerprint("app", "pw", &dbs);
        assert_eq!(f, fingerprint("app", "pw", &dbs));
        assert_ne!(f, fingerprint("app", "pw2", &dbs));
        assert_ne!(f, fingerprint("app2", "pw", &dbs));
        assert_ne!(f, fingerprint("app", "pw", &[]));
    }
}
