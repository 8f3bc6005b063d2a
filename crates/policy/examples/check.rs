//! Validates policy files and prints a summary, or the first error.
//!
//! `cargo run -p geofence-policy --example check -- config/geofence.toml`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for arg in std::env::args().skip(1) {
        match geofence_policy::load_file(std::path::Path::new(&arg)) {
            Ok(cfg) => match geofence_policy::Policy::from_config(&cfg) {
                Ok(p) => {
                    println!(
                        "{arg}: ok: {} rules, {} jurisdictions, {} apps, default {}",
                        p.rules().len(),
                        p.jurisdictions().len(),
                        p.apps().count(),
                        p.default_action()
                    );
                    for r in p.rules() {
                        let apps = match &r.apps {
                            None => "all traffic".to_string(),
                            Some(a) => format!("{} apps", a.len()),
                        };
                        let to: Vec<String> = r.targets.iter().map(|t| t.name()).collect();
                        println!(
                            "  {}. {} [{apps}] to {} by {} -> {}",
                            r.index + 1,
                            r.name,
                            to.join(", "),
                            r.by,
                            r.action
                        );
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    status = ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("{e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
