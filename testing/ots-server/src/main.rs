//! `ots-testserver`: runs the in-memory Onetime Secret compatible server until SIGTERM/SIGINT.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use ots_testserver::{
    Account, AfterStoreFault, AfterStoreKind, Config, Faults, Plan, Profile, RateLimitFault,
    TestServer,
};

/// In-memory Onetime Secret compatible API server for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// An account as EMAIL:TOKEN (repeatable).
    #[arg(long = "account", value_name = "EMAIL:TOKEN")]
    accounts: Vec<Account>,
    /// Issue 31-character keys, like servers before v0.24.
    #[arg(long)]
    legacy_keys: bool,
    /// Do not serve /api/v2 (a v1-only server).
    #[arg(long)]
    no_v2: bool,
    /// Base URL used in links (default: the listen URL).
    #[arg(long)]
    public_url: Option<String>,
    /// Longest ttl for anonymous secrets (seconds).
    #[arg(long, default_value_t = 604_800)]
    ttl_max_anonymous: u64,
    /// Longest ttl for authenticated secrets (seconds).
    #[arg(long, default_value_t = 2_592_000)]
    ttl_max_authenticated: u64,
    /// Fraction of API requests answered 500/503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Fraction of API requests that hang for 120 s.
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Latency added to every API request (ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Rate-limit burst as RETRY_AFTER:FOR_SECS, starting at startup.
    #[arg(long, value_name = "RETRY_AFTER:FOR_SECS", value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimitFault>,
    /// Every API request fails with 503.
    #[arg(long)]
    outage: bool,
    /// Strike successful creates after their secret is stored: hang, 500, 502, 503,
    /// garbage or reset.
    #[arg(long, value_name = "KIND")]
    after_store: Option<AfterStoreKind>,
    /// With --after-store: strike only this fraction of creates.
    #[arg(long, requires = "after_store")]
    after_store_rate: Option<f64>,
    /// With --after-store: strike only the next N creates.
    #[arg(long, requires = "after_store")]
    after_store_count: Option<u32>,
    /// Which release of the real server to imitate: current, v0.23 or v0.20.
    #[arg(long, default_value = "current")]
    profile: Profile,
    /// Plan of every account: anonymous, free or paid.
    #[arg(long, default_value = "paid")]
    plan: Plan,
    /// Whether anonymous v2 calls are allowed: on or off.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    guest_routes: bool,
    /// Largest v2 secret in bytes (SECRET_MAX_LENGTH).
    #[arg(long, default_value_t = ots_testserver::SECRET_MAX_BYTES)]
    max_secret_bytes: usize,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected on or off".to_owned()),
    }
}

fn parse_rate_limit(s: &str) -> Result<RateLimitFault, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| "expected RETRY_AFTER:FOR_SECS".to_owned())?;
    Ok(RateLimitFault {
        retry_after_secs: a.parse().map_err(|e| format!("RETRY_AFTER: {e}"))?,
        for_secs: b.parse().map_err(|e| format!("FOR_SECS: {e}"))?,
    })
}

fn rate(name: &str, v: f64) -> std::io::Result<f64> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(std::io::Error::other(format!(
            "{name} must be between 0 and 1"
        )))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        accounts: args.accounts,
        legacy_keys: args.legacy_keys,
        enable_v2: !args.no_v2,
        ttl_max_anonymous: args.ttl_max_anonymous,
        ttl_max_authenticated: args.ttl_max_authenticated,
        faults: Faults {
            error_rate: rate("--error-rate", args.error_rate)?,
            timeout_rate: rate("--timeout-rate", args.timeout_rate)?,
            latency_ms: args.latency_ms,
            rate_limit: args.rate_limit,
            outage: args.outage,
            after_store: match args.after_store {
                Some(kind) => Some(AfterStoreFault {
                    kind,
                    rate: args
                        .after_store_rate
                        .map(|r| rate("--after-store-rate", r))
                        .transpose()?,
                    count: args.after_store_count,
                }),
                None => None,
            },
            // The batch status faults have no flag: `PUT /_admin/faults` sets them.
            ..Faults::default()
        },
        public_url: args.public_url,
        profile: args.profile,
        plan: args.plan,
        guest_routes: args.guest_routes,
        max_secret_bytes: args.max_secret_bytes,
        // Custom domains are set by tests through the library.
        custom_domains: Vec::new(),
    };
    let server = TestServer::start_on(args.listen, config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url())?;
        out.flush()?;
    }
    tracing::info!(url = %server.url(), "ots-testserver ready");
    wait_for_signal().await?;
    tracing::info!("ots-testserver stopping");
    drop(server);
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
