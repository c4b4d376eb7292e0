//! ferrogate: the gateway daemon. Validates its config completely before starting anything,
//! then runs until SIGINT/SIGTERM. Without `--config` it reads /etc/ferrogate/ferrogate.toml,
//! or, when that does not exist, runs its embedded default (virtual devices, see
//! `control/src/default.toml`).

use clap::Parser;
use control::config::RawConfig;
use control::state::State;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrogate",
    version,
    about = "Userspace IPsec and overlay gateway on DPDK"
)]
struct Cli {
    /// Configuration file (TOML) [default: /etc/ferrogate/ferrogate.toml if it exists, else
    /// the embedded default].
    #[arg(short, long)]
    config: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default: bool,
}

const SYSTEM_CONFIG: &str = "/etc/ferrogate/ferrogate.toml";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default {
        print!("{}", control::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let (name, text) = match cli.config {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(t) => (path, t),
            Err(e) => {
                eprintln!("ferrogate: cannot read {path}: {e}");
                return ExitCode::from(1);
            }
        },
        None => match std::fs::read_to_string(SYSTEM_CONFIG) {
            Ok(t) => (SYSTEM_CONFIG.to_string(), t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                "embedded default configuration".to_string(),
                control::DEFAULT_CONFIG.to_string(),
            ),
            Err(e) => {
                eprintln!("ferrogate: cannot read {SYSTEM_CONFIG}: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let state = match RawConfig::parse(&text).and_then(|raw| State::from_config(&raw)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferrogate: {name}: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.check {
        println!("{name}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&state.system.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tracing::info!("configuration: {name}");
    match control::daemon::run(state) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrogate: {e}");
            ExitCode::from(1)
        }
    }
}
