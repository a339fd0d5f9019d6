//! The `kubectl-ots` plugin: command line, cluster connection and dispatch.
//!
//! Output rules: a secret value, passphrase or API token is never read or printed (Secrets are
//! only checked for existence, by their metadata). The one-time link is printed exactly once, on
//! stdout, by `share --wait` and `generate --wait` (a generated value never reaches the plugin);
//! everything else a command says goes to stderr, except tables.

mod commands;
mod error;
mod servers;
mod table;

use clap::{CommandFactory, Parser, Subcommand};
use error::PluginError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Share Kubernetes Secrets as one-time links with the ots-operator (kubectl plugin).
#[derive(Parser, Debug)]
#[command(name = "kubectl-ots", bin_name = "kubectl ots", version, about)]
pub struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (default: the context's namespace, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Share a Secret: create a OneTimeShare for it (with --wait, print its link once).
    Share(ShareArgs),
    /// Show one OneTimeShare: phase, expiry, whether it was opened (never the link).
    Get {
        /// The OneTimeShare's name.
        name: String,
    },
    /// List the OneTimeShares of the namespace (never their links).
    List,
    /// Hand a share out again under the same name: burns a live link and shares anew.
    Reissue {
        /// The OneTimeShare's name.
        name: String,
        /// Wait until the new link exists (it is not printed: read it with kubectl get).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. 90s or 5m.
        #[arg(long, default_value = "60s", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Delete a OneTimeShare so that its unread link is burned, and wait until it is gone; with
    /// --keep, burn the link and keep the OneTimeShare.
    Burn {
        /// The OneTimeShare's name.
        name: String,
        /// Keep the OneTimeShare: burn its live link now (the ots.dev/burn annotation) and leave
        /// it Burned until a reissue, instead of deleting it.
        #[arg(long)]
        keep: bool,
        /// How long to wait for the burn, e.g. 90s or 5m.
        #[arg(long, default_value = "60s", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Generate a random value into a Secret and share it: the operator creates the Secret (or
    /// adds the key to one it made) and shares the value; nobody sees it but the link's reader.
    Generate(GenerateArgs),
    /// List the namespace's OtsServers and the ClusterOtsServers: Ready or why not, live links.
    ///
    /// Also which ClusterOtsServer is the default. Never shows or reads a Secret.
    Servers {
        /// List the OtsServers of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print a shell completion script: bash, zsh or fish.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

// The options `share` and `generate` both end with: the OneTimeShare's name and waiting for
// its link (a plain comment: a doc comment here could become the subcommands' help text).
#[derive(clap::Args, Debug)]
struct LinkArgs {
    /// Name of the OneTimeShare (default: the Secret's name and a random suffix).
    #[arg(long)]
    name: Option<String>,
    /// Wait for the link and print it once, on stdout.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, e.g. 90s or 5m.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    timeout: Duration,
}

/// `kubectl ots share`.
#[derive(clap::Args, Debug)]
struct ShareArgs {
    /// The Secret to share (in the namespace).
    secret: String,
    /// Share only this key's value (default: every key, as sorted KEY=VALUE lines; a multi-line
    /// value as KEY<<EOF, its lines, EOF).
    #[arg(long, value_name = "K")]
    key: Option<String>,
    /// How long the link stays valid: 90s, 30m, 24h, 7d (at least 60s; default 7d).
    #[arg(long)]
    ttl: Option<String>,
    /// A passphrase the reader must type, from a key of a Secret: SECRET/KEY.
    #[arg(long, value_name = "SECRET/KEY")]
    passphrase_from: Option<String>,
    /// An email address the server sends the link to (needs server credentials).
    #[arg(long, value_name = "EMAIL")]
    recipient: Option<String>,
    #[command(flatten)]
    link: LinkArgs,
}

/// `kubectl ots generate`.
#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// The Secret the operator creates (or one it made earlier) to hold the value.
    secret: String,
    /// The key the value is written to.
    #[arg(long, value_name = "K", default_value = "value")]
    key: String,
    /// Number of characters, 8 to 1024.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(8..=1024))]
    length: u32,
    /// The characters drawn from.
    #[arg(long, value_enum, default_value_t = CharsetArg::Alphanumeric)]
    charset: CharsetArg,
    /// Delete the generated Secret with the OneTimeShare (default: the Secret stays).
    #[arg(long)]
    delete_with_share: bool,
    /// How long the link stays valid: 90s, 30m, 24h, 7d (at least 60s; default 7d).
    #[arg(long)]
    ttl: Option<String>,
    #[command(flatten)]
    link: LinkArgs,
}

/// `--charset` (spec.generate.charset).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CharsetArg {
    /// A-Z, a-z, 0-9.
    Alphanumeric,
    /// A-Z, a-z, 0-9 and !#$%&()*+,-./:;<=>?@[]^_{|}~.
    AlphanumericSymbols,
    /// 0-9, a-f.
    Hex,
    /// 0-9.
    Numeric,
}

/// Parses "90s", "5m" or "1h" (at least 1s).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 5m or 1h");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit) {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(bad()),
    }
}

/// Where a command talks to: a client and the namespace.
pub struct Target {
    /// The Kubernetes client.
    pub client: Client,
    /// The namespace.
    pub namespace: String,
}

/// Loads the kubeconfig as kubectl does (--kubeconfig, else $KUBECONFIG, else ~/.kube/config),
/// with --context and -n.
async fn connect(cli: &Cli) -> Result<Target, PluginError> {
    let kubeconfig = match &cli.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| PluginError::Kubeconfig(format!("cannot read {}: {e}", path.display())))?,
        None => Kubeconfig::read().map_err(|e| {
            PluginError::Kubeconfig(format!(
                "{e} (set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config)"
            ))
        })?,
    };
    if let Some(context) = &cli.context
        && !kubeconfig.contexts.iter().any(|c| &c.name == context)
    {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(PluginError::NoSuchContext {
            context: context.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        cluster: None,
        user: None,
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| PluginError::Kubeconfig(e.to_string()))?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| PluginError::Kubeconfig(e.to_string()))?;
    Ok(Target { client, namespace })
}

/// Runs the plugin and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = &cli.command {
        let mut command = Cli::command();
        clap_complete::generate(*shell, &mut command, "kubectl-ots", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kubectl-ots: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), PluginError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = connect(&cli).await?;
    match cli.command {
        Command::Share(args) => commands::share(&target, args).await,
        Command::Get { name } => commands::get(&target, &name).await,
        Command::List => commands::list(&target).await,
        Command::Reissue {
            name,
            wait,
            timeout,
        } => commands::reissue(&target, &name, wait.then_some(timeout)).await,
        Command::Burn {
            name,
            keep: false,
            timeout,
        } => commands::burn(&target, &name, timeout).await,
        Command::Burn {
            name,
            keep: true,
            timeout,
        } => commands::burn_and_keep(&target, &name, timeout).await,
        Command::Generate(args) => commands::generate(&target, args).await,
        Command::Servers { all_namespaces } => {
            let scope = if all_namespaces {
                servers::Scope::AllNamespaces
            } else {
                servers::Scope::Namespace
            };
            servers::servers(&target, scope).await
        }
        Command::Completion { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_take_seconds_minutes_and_hours() {
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "0s", "5", "5d", "-1s", "1.5m"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }
}
