//! The store's address: `mysql://USER@HOST[:PORT]/DATABASE`. A DSN that
//! carries a password (`USER:PASSWORD@`) is refused: the password comes
//! from a file or the environment, never from a flag value (which `ps`
//! shows) or anything orca logs. The error never quotes the DSN.

use std::fmt;

use crate::topology::InstanceKey;

/// A parsed store address. Its `Display` is the DSN as given (it holds no
/// password to hide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub user: String,
    pub server: InstanceKey,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error(
        "the store DSN carries a password: give it with --store-password-file or ORCA_STORE_PASSWORD instead (a password in a flag shows in `ps` and logs); the DSN is mysql://USER@HOST[:PORT]/DATABASE"
    )]
    Password,
    #[error("the store DSN must be mysql://USER@HOST[:PORT]/DATABASE: {0}")]
    Shape(String),
}

impl Dsn {
    pub fn parse(text: &str) -> Result<Dsn, DsnError> {
        let shape = |why: &str| DsnError::Shape(why.to_string());
        let text = text.trim();
        let rest = text
            .strip_prefix("mysql://")
            .or_else(|| text.strip_prefix("mariadb://"))
            .ok_or_else(|| shape("it must start with mysql://"))?;
        // The password check comes first, on the user part only, so that
        // no other error can be about a DSN with a password in it.
        let (user, after) = rest
            .rsplit_once('@')
            .ok_or_else(|| shape("no USER@ before the host"))?;
        if user.contains(':') {
            return Err(DsnError::Password);
        }
        if user.is_empty() {
            return Err(shape("the user is empty"));
        }
        let (server, database) = after
            .split_once('/')
            .ok_or_else(|| shape("no /DATABASE after the host"))?;
        let database = database.split(['?', '#']).next().unwrap_or_default();
        if !valid_database(database) {
            return Err(shape(
                "the database name must be 1 to 64 letters, digits, '_' or '$'",
            ));
        }
        let server: InstanceKey = server
            .parse()
            .map_err(|e: crate::topology::ParseError| shape(&e.to_string()))?;
        Ok(Dsn {
            user: user.to_string(),
            server,
            database: database.to_string(),
        })
    }
}

/// A database name orca may quote as an identifier in `CREATE DATABASE`.
fn valid_database(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}@{}/{}", self.user, self.server, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsns() {
        let ok = |user: &str, host: &str, port: u16, db: &str| {
            Ok(Dsn {
                user: user.into(),
                server: InstanceKey::new(host, port),
                database: db.into(),
            })
        };
        let cases: Vec<(&str, Result<Dsn, DsnError>)> = vec![
            (
                "mysql://orca@10.0.0.1:3307/orca",
                ok("orca", "10.0.0.1", 3307, "orca"),
            ),
            (
                "mysql://orca@store/orca_meta",
                ok("orca", "store", 3306, "orca_meta"),
            ),
            ("mariadb://o@[::1]:3306/x", ok("o", "::1", 3306, "x")),
            ("mysql://orca:s3cret@store/orca", Err(DsnError::Password)),
            ("mysql://orca:@store/orca", Err(DsnError::Password)),
            // A password with an '@' in it is still a password.
            ("mysql://orca:p@ss@store/orca", Err(DsnError::Password)),
        ];
        for (text, want) in cases {
            assert_eq!(Dsn::parse(text), want, "{text}");
        }
        for bad in [
            "store/orca",
            "mysql://store/orca",
            "mysql://@store/orca",
            "mysql://orca@store",
            "mysql://orca@store/",
            "mysql://orca@store/or`ca",
            "mysql://orca@store:0/orca",
            "mysql://orca@store:x/orca",
        ] {
            let got = Dsn::parse(bad);
            assert!(matches!(got, Err(DsnError::Shape(_))), "{bad}: {got:?}");
        }
    }

    #[test]
    fn the_password_never_shows_in_the_error() {
        let e = Dsn::parse("mysql://orca:hunter2@store/orca").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = Dsn::parse("mysql://orca:hunter2@store").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn display_is_the_dsn() {
        let d = Dsn::parse("mysql://orca@10.0.0.1/orca").unwrap();
        assert_eq!(d.to_string(), "mysql://orca@10.0.0.1:3306/orca");
    }
}
