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

/// mimalloc's `mi_option_purge_delay`: the 16th of mimalloc v3's `mi_option_e` (include/mimalloc.h);
/// libmimalloc-sys names no constant for it. A test checks the index against its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed after a burst (a backlog of shares, a restart) goes back to the system at once,
/// not after mimalloc's default delay of a second, which a quiet process may never reach: with
/// 5,000 shares RSS was 4.1 KiB per share over idle, 3.7 KiB with this (testing/bench; design.md's
/// bar is 4). `MIMALLOC_PURGE_DELAY` in the environment still decides.
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: stores one option value of mimalloc's; valid at any time, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

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
    purge_freed_memory_at_once();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc v3's default purge delay is 1000 ms; no other option has that default.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads one option value of mimalloc's.
            let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay, 1000);
        }
        purge_freed_memory_at_once();
        // SAFETY: as above.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(delay, 0);
        }
    }
}
