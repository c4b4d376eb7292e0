//! ferrogate: the gateway daemon. Validates its config completely before starting anything,
//! then runs until SIGINT/SIGTERM.

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
    /// Configuration file (TOML).
    #[arg(short, long, default_value = "/etc/ferrogate/ferrogate.toml")]
    config: String,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let text = match std::fs::read_to_string(&cli.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferrogate: cannot read {}: {e}", cli.config);
            return ExitCode::from(1);
        }
    };
    let state = match RawConfig::parse(&text).and_then(|raw| State::from_config(&raw)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferrogate: {}: {e}", cli.config);
            return ExitCode::from(1);
        }
    };
    if cli.check {
        println!("{}: configuration is valid", cli.config);
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&state.system.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match control::daemon::run(state) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrogate: {e}");
            ExitCode::from(1)
        }
    }
}
