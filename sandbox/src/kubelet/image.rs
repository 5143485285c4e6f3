//! Emulation of the official `mariadb` image (and `mysql` images, which
//! run the same installed `mariadbd`): its entrypoint's command handling
//! and first-start initialisation, and its file layout (datadir
//! `/var/lib/mysql`, configuration in `/etc/mysql/mariadb.conf.d` and
//! `/etc/mysql/conf.d`).

use std::path::{Path, PathBuf};

use super::volumes::Mounts;

/// Where the image keeps its data.
pub const DATADIR: &str = "/var/lib/mysql";
/// The configuration directories the image's `my.cnf` includes, in order.
pub const CONF_DIRS: &[&str] = &["/etc/mysql/mariadb.conf.d", "/etc/mysql/conf.d"];
/// A file in the data directory holding the initialisation SQL until the
/// server has run it.
pub const INIT_FILE: &str = ".orca-init.sql";

fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    // a tag is after the last ':' that follows the last '/'
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

/// Whether the sandbox runs `mariadbd` for this image: the image's name
/// (last path element, without tag) contains `mariadb` or `mysql`, and it
/// is not an exporter.
pub fn is_database_image(image: &str) -> bool {
    let repo = repository(image).to_ascii_lowercase();
    let name = repo.rsplit('/').next().unwrap_or(&repo);
    (name.contains("mariadb") || name.contains("mysql")) && !name.contains("exporter")
}

/// The image reference as the container runtime reports it
/// (`mariadb:10.11` is `docker.io/library/mariadb:10.11`).
pub fn normalize_image(image: &str) -> String {
    let repo = repository(image);
    let rest = &image[repo.len()..];
    let rest = if rest.is_empty() { ":latest" } else { rest };
    let first = repo.split('/').next().unwrap_or("");
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}{rest}")
}

/// A stable image ID (`repo@sha256:...`) for an image reference.
pub fn image_id(image: &str) -> String {
    let full = normalize_image(image);
    let repo = repository(&full).to_string();
    let mut hex = String::new();
    for i in 0u32..8 {
        let mut h: u32 = 0x811c_9dc5 ^ i;
        for b in full.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        hex.push_str(&format!("{h:08x}"));
    }
    format!("{repo}@sha256:{hex}")
}

/// The `mariadbd` arguments for a container's command and arguments
/// (already expanded), as the image's entrypoint would run it: no command
/// runs `mariadbd`; a first argument starting with `-` is an option to
/// `mariadbd`; `docker-entrypoint.sh` is skipped.
pub fn mariadbd_args(command: &[String], args: &[String]) -> Result<Vec<String>, String> {
    let mut argv: Vec<String> = if command.is_empty() {
        if args.is_empty() {
            vec!["mariadbd".to_string()]
        } else {
            args.to_vec()
        }
    } else {
        command.iter().chain(args).cloned().collect()
    };
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    if argv
        .first()
        .is_some_and(|a| base(a) == "docker-entrypoint.sh")
    {
        argv.remove(0);
    }
    if argv.is_empty() {
        argv.push("mariadbd".into());
    }
    if argv[0].starts_with('-') {
        argv.insert(0, "mariadbd".into());
    }
    match base(&argv[0]).as_str() {
        "mariadbd" | "mysqld" => Ok(argv[1..].to_vec()),
        other => Err(format!(
            "exec: \"{other}\": the sandbox runs only mariadbd (or mysqld) in database images"
        )),
    }
}

/// Rewrites `--option=/container/path` arguments whose path is on a mount
/// to the host path.
pub fn translate_args(args: &[String], mounts: &Mounts) -> Vec<String> {
    args.iter()
        .map(|a| {
            if let Some((opt, value)) = a.split_once('=')
                && opt.starts_with("--")
                && value.starts_with('/')
                && let Some(host) = mounts.host_path(value)
            {
                format!("{opt}={}", host.display())
            } else {
                a.clone()
            }
        })
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    for n in names {
        if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == n)
            && !v.is_empty()
        {
            return Some(v.as_str());
        }
    }
    None
}

/// A variable or its `_FILE` form (the file read through the mounts).
fn secret_var(
    env: &[(String, String)],
    names: &[&str],
    mounts: &Mounts,
) -> Result<Option<String>, String> {
    if let Some(v) = env_get(env, names) {
        return Ok(Some(v.to_string()));
    }
    let file_names: Vec<String> = names.iter().map(|n| format!("{n}_FILE")).collect();
    let refs: Vec<&str> = file_names.iter().map(String::as_str).collect();
    if let Some(path) = env_get(env, &refs) {
        let host = mounts
            .host_path(path)
            .ok_or_else(|| format!("error: {path} is not on a volume of the container"))?;
        let text = std::fs::read_to_string(&host).map_err(|e| format!("error: {path}: {e}"))?;
        return Ok(Some(text.trim_end_matches('\n').to_string()));
    }
    Ok(None)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// What the first start of an empty data directory does.
#[derive(Debug, Clone)]
pub struct InitPlan {
    /// One statement per line.
    pub sql: String,
    /// Lines for the container's log (the generated root password).
    pub log: Vec<String>,
}

/// The entrypoint's initialisation for the container's environment, or the
/// entrypoint's error when the environment says nothing about the root
/// password.
pub fn init_plan(env: &[(String, String)], mounts: &Mounts) -> Result<InitPlan, String> {
    let mut log = Vec::new();
    let root_pw = secret_var(
        env,
        &["MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"],
        mounts,
    )?;
    let allow_empty = env_get(
        env,
        &[
            "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
            "MYSQL_ALLOW_EMPTY_PASSWORD",
        ],
    )
    .is_some();
    let random = env_get(
        env,
        &["MARIADB_RANDOM_ROOT_PASSWORD", "MYSQL_RANDOM_ROOT_PASSWORD"],
    )
    .is_some();
    let root_pw = match (root_pw, allow_empty, random) {
        (Some(pw), _, _) => pw,
        (None, true, _) => String::new(),
        (None, false, true) => {
            let pw = uuid::Uuid::new_v4().simple().to_string();
            log.push(format!("GENERATED ROOT PASSWORD: {pw}"));
            pw
        }
        (None, false, false) => {
            return Err(
                "error: database is uninitialized and password option is not specified\n\
                 \tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, \
                 MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
                    .to_string(),
            );
        }
    };
    let root_host = env_get(env, &["MARIADB_ROOT_HOST", "MYSQL_ROOT_HOST"]).unwrap_or("%");
    let mut sql = vec![
        "SET @@SESSION.SQL_LOG_BIN=0;".to_string(),
        "SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');"
            .to_string(),
        format!(
            "ALTER USER 'root'@'localhost' IDENTIFIED BY {};",
            quote(&root_pw)
        ),
    ];
    if root_host != "localhost" {
        let who = format!("'root'@{}", quote(root_host));
        sql.push(format!(
            "CREATE OR REPLACE USER {who} IDENTIFIED BY {};",
            quote(&root_pw)
        ));
        sql.push(format!("GRANT ALL ON *.* TO {who} WITH GRANT OPTION;"));
    }
    let database = env_get(env, &["MARIADB_DATABASE", "MYSQL_DATABASE"]);
    if let Some(db) = database {
        sql.push(format!("CREATE DATABASE IF NOT EXISTS {};", ident(db)));
    }
    let user = env_get(env, &["MARIADB_USER", "MYSQL_USER"]);
    let password = secret_var(env, &["MARIADB_PASSWORD", "MYSQL_PASSWORD"], mounts)?;
    if let Some(user) = user {
        if user == "root" {
            return Err(
                "error: MARIADB_USER=\"root\", MARIADB_USER and MARIADB_PASSWORD are for \
                 configuring a regular user and cannot be used for the root user"
                    .to_string(),
            );
        }
        let who = format!("{}@'%'", quote(user));
        sql.push(format!(
            "CREATE OR REPLACE USER {who} IDENTIFIED BY {};",
            quote(password.as_deref().unwrap_or(""))
        ));
        if let Some(db) = database {
            sql.push(format!("GRANT ALL ON {}.* TO {who};", ident(db)));
        }
    }
    let mut text = sql.join("\n");
    text.push('\n');
    Ok(InitPlan { sql: text, log })
}

/// Where one database container's files live.
#[derive(Debug, Clone)]
pub struct Layout {
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
    pub defaults_file: PathBuf,
}

/// The defaults file the kubelet writes for a database container: the
/// addresses and paths of the sandbox, small InnoDB defaults matching the
/// data-directory template, then the image's configuration directories as
/// mounted.
pub fn defaults_file(layout: &Layout, ip: &str, mounts: &Mounts) -> String {
    let mut cnf = format!(
        "# written by the orca sandbox kubelet\n\
         [client-server]\n\
         socket = {sock}\n\
         port = 3306\n\
         \n\
         [mariadbd]\n\
         user = root\n\
         datadir = {data}\n\
         bind-address = {ip}\n\
         port = 3306\n\
         socket = {sock}\n\
         pid-file = {pid}\n\
         log-error = {log}\n\
         skip-host-cache\n\
         skip-name-resolve\n",
        sock = layout.socket.display(),
        data = layout.datadir.display(),
        pid = layout.pid_file.display(),
        log = layout.error_log.display(),
    );
    for (k, v) in crate::mysqld::IMAGE_INNODB_SETTINGS {
        cnf.push_str(&format!("{k} = {v}\n"));
    }
    cnf.push('\n');
    for dir in CONF_DIRS {
        if let Some(host) = mounts.host_path(dir)
            && host.is_dir()
        {
            cnf.push_str(&format!("!includedir {}\n", host.display()));
        }
        for (path, host) in mounts.below(dir) {
            if path.ends_with(".cnf") && !path[dir.len() + 1..].contains('/') && host.is_file() {
                cnf.push_str(&format!("!include {}\n", host.display()));
            }
        }
    }
    cnf
}

/// The full `mariadbd` command line: the defaults file, the paths the
/// sandbox owns (configuration files cannot move them), the container's
/// own arguments, then the address and user (which nothing may change, or
/// servers would collide).
pub fn command_line(
    layout: &Layout,
    ip: &str,
    user_args: &[String],
    init_file: Option<&Path>,
) -> Vec<String> {
    let mut v = vec![
        format!("--defaults-file={}", layout.defaults_file.display()),
        format!("--datadir={}", layout.datadir.display()),
        format!("--socket={}", layout.socket.display()),
        format!("--pid-file={}", layout.pid_file.display()),
        format!("--log-error={}", layout.error_log.display()),
    ];
    if let Some(f) = init_file {
        v.push(format!("--init-file={}", f.display()));
    }
    v.extend(user_args.iter().cloned());
    v.push(format!("--bind-address={ip}"));
    v.push("--user=root".to_string());
    v
}

/// Whether a data directory still needs the entrypoint's initialisation.
pub fn needs_init(datadir: &Path) -> bool {
    !datadir.join("mysql").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn images() {
        assert!(is_database_image("mariadb:10.11"));
        assert!(is_database_image("docker.io/library/mysql:8.0"));
        assert!(is_database_image("quay.io/x/mariadb@sha256:abc"));
        assert!(!is_database_image("prom/mysqld-exporter:v0.15"));
        assert!(!is_database_image("busybox"));
        assert!(!is_database_image("mysql/other:1"));
        assert_eq!(
            normalize_image("mariadb:10.11"),
            "docker.io/library/mariadb:10.11"
        );
        assert_eq!(
            normalize_image("mariadb"),
            "docker.io/library/mariadb:latest"
        );
        assert_eq!(
            normalize_image("bitnami/mariadb:11"),
            "docker.io/bitnami/mariadb:11"
        );
        assert_eq!(normalize_image("localhost:5000/m:1"), "localhost:5000/m:1");
        assert!(image_id("mariadb:10.11").starts_with("docker.io/library/mariadb@sha256:"));
        assert_eq!(
            image_id("mariadb:10.11").len(),
            "docker.io/library/mariadb@sha256:".len() + 64
        );
    }

    #[test]
    fn entrypoint_commands() {
        assert_eq!(mariadbd_args(&[], &[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            mariadbd_args(&[], &s(&["--server-id=11"])).unwrap(),
            s(&["--server-id=11"])
        );
        assert_eq!(
            mariadbd_args(&s(&["docker-entrypoint.sh"]), &s(&["mariadbd", "--a"])).unwrap(),
            s(&["--a"])
        );
        assert_eq!(
            mariadbd_args(&s(&["/usr/sbin/mysqld"]), &s(&["--b"])).unwrap(),
            s(&["--b"])
        );
        assert!(mariadbd_args(&s(&["sh", "-c", "x"]), &[]).is_err());
    }

    #[test]
    fn init_sql() {
        let m = Mounts::default();
        let env = vec![("MARIADB_ROOT_PASSWORD".to_string(), "p'w".to_string())];
        let plan = init_plan(&env, &m).unwrap();
        assert!(
            plan.sql
                .contains("ALTER USER 'root'@'localhost' IDENTIFIED BY 'p\\'w';")
        );
        assert!(plan.sql.contains("CREATE OR REPLACE USER 'root'@'%'"));
        assert!(!plan.sql.contains("CREATE DATABASE"));
        assert!(plan.sql.lines().all(|l| l.ends_with(';')));
        let env = vec![
            ("MYSQL_ROOT_PASSWORD".to_string(), "x".to_string()),
            ("MARIADB_DATABASE".to_string(), "app".to_string()),
            ("MARIADB_USER".to_string(), "u".to_string()),
            ("MARIADB_PASSWORD".to_string(), "v".to_string()),
        ];
        let plan = init_plan(&env, &m).unwrap();
        assert!(plan.sql.contains("CREATE DATABASE IF NOT EXISTS `app`;"));
        assert!(plan.sql.contains("GRANT ALL ON `app`.* TO 'u'@'%';"));
        assert!(init_plan(&[], &m).unwrap_err().contains("uninitialized"));
        let env = vec![("MARIADB_RANDOM_ROOT_PASSWORD".to_string(), "1".to_string())];
        assert!(init_plan(&env, &m).unwrap().log[0].starts_with("GENERATED ROOT PASSWORD"));
    }
}
