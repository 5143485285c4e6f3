//! `orca-sandbox local`: a replication topology of real `mariadbd` servers on
//! loopback addresses, discovered and printed while it runs, until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::mysqld::admin_credentials;
use crate::{LocalCluster, Shape};
use orca::analysis::Thresholds;
use orca::cli::discover::{discover, render_tree};
use orca::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use orca::mysql::conn::Timeouts;

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Each instance's source by index, `-` for a primary: `-,0,0` is a
    /// primary with two replicas, `-,0,1` a chain.
    #[arg(long, default_value = "-,0,0")]
    pub shape: String,
    /// Directory for the files users need (the admin password file).
    #[arg(long, default_value = ".orca-sandbox")]
    pub dir: PathBuf,
    /// Print the topology once and stop the servers (for scripts).
    #[arg(long)]
    pub once: bool,
}

pub async fn run(args: LocalArgs) -> u8 {
    let shape = match Shape::parse(&args.shape) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox local: --shape: {e}");
            return EXIT_USAGE;
        }
    };
    eprintln!("starting {} mariadbd ...", shape.sources.len());
    let cluster = match LocalCluster::start(shape).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orca-sandbox local: {e}");
            return EXIT_FAILED;
        }
    };
    let creds = admin_credentials();
    let pw_file = args.dir.join("password");
    let written = std::fs::create_dir_all(&args.dir).and_then(|_| {
        orca::agent::write_private(&pw_file, format!("{}\n", creds.password()).as_bytes())
    });
    if let Err(e) = written {
        eprintln!(
            "orca-sandbox local: cannot write {}: {e}",
            pw_file.display()
        );
        return EXIT_FAILED;
    }
    let seed = cluster.instances[0].key();
    println!("local topology is up; from another shell:");
    println!(
        "  orca discover --seed {seed} --user {} --password-file {}",
        creds.user,
        pw_file.display()
    );
    println!(
        "  mariadb -h {} -u {} -p  (password in {})",
        seed.host,
        creds.user,
        pw_file.display()
    );
    for m in &cluster.instances {
        println!(
            "  server_id {} at {} (pid {:?}, data {})",
            m.server_id(),
            m.key(),
            m.pid(),
            m.data_dir().display()
        );
    }
    // SIGTERM (kill, a service manager) stops the servers as Ctrl-C does.
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orca-sandbox local: cannot handle SIGTERM: {e}");
            return EXIT_FAILED;
        }
    };
    let mut last = String::new();
    loop {
        let report = discover(&seed, &creds, Timeouts::default(), Thresholds::default()).await;
        let tree = render_tree(&report);
        if tree != last {
            println!("\n{tree}");
            last = tree;
        }
        if args.once {
            return EXIT_OK;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopping the local servers");
                return EXIT_OK;
            }
            _ = term.recv() => {
                eprintln!("stopping the local servers");
                return EXIT_OK;
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
