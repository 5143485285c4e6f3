//! `orca crds`: the CustomResourceDefinitions as YAML, printed or written
//! to a directory (the files in `crds/` are written this way).

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK};
use crate::k8s::crd;

#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

pub fn run(args: CrdsArgs) -> u8 {
    match args.write {
        None => match crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("orca crds: {e}");
                EXIT_FAILED
            }
        },
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("orca crds: cannot create {}: {e}", dir.display());
                return EXIT_FAILED;
            }
            for (name, content) in crd::crd_yaml_files() {
                let path = dir.join(name);
                if let Err(e) = std::fs::write(&path, content) {
                    eprintln!("orca crds: cannot write {}: {e}", path.display());
                    return EXIT_FAILED;
                }
                println!("wrote {}", path.display());
            }
            EXIT_OK
        }
    }
}
