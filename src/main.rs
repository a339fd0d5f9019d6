//! `ots-operator`: `run` the controller, or print the `crd`.

use clap::{Parser, Subcommand};
use kube::CustomResourceExt;
use ots_operator::config::RunArgs;
use ots_operator::resource::{
    ClusterOtsNotification, ClusterOtsServer, OneTimeShare, OtsNotification, OtsServer,
};
use std::process::ExitCode;

/// mimalloc returns freed pages to the system; glibc's malloc kept most of what a burst of shares
/// once used (see `testing/bench`: memory per share).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands out Kubernetes Secrets as Onetime Secret one-time links.
#[derive(Parser)]
#[command(name = "ots-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print a CustomResourceDefinition as YAML: OneTimeShare's, or the named kind's.
    Crd {
        /// The kind: OneTimeShare (default), OtsServer, ClusterOtsServer, OtsNotification or
        /// ClusterOtsNotification.
        #[arg(default_value = "OneTimeShare")]
        kind: CrdKind,
    },
}

/// The kinds whose CRD `crd` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "verbatim")]
enum CrdKind {
    OneTimeShare,
    OtsServer,
    ClusterOtsServer,
    OtsNotification,
    ClusterOtsNotification,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => match serde_yaml::to_string(&match kind {
            CrdKind::OneTimeShare => OneTimeShare::crd(),
            CrdKind::OtsServer => OtsServer::crd(),
            CrdKind::ClusterOtsServer => ClusterOtsServer::crd(),
            CrdKind::OtsNotification => OtsNotification::crd(),
            CrdKind::ClusterOtsNotification => ClusterOtsNotification::crd(),
        }) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ots-operator: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ots-operator: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(ots_operator::run::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ots-operator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
