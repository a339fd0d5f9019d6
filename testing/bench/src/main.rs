//! `ots-bench`: measures ots-operator side by side with what it replaces, on a real control plane
//! and an in-process `ots-testserver`. It prints figures and asserts nothing about timing.
//!
//! - Throughput: N shares by the operator (a backlog it finds at start, and shares created while
//!   it runs), by a bare Rust loop making the same API calls with the same concurrency (the
//!   floor), and by a kubectl+curl shell loop (a sample, extrapolated).
//! - API economy: the operator's apiserver requests (audit log, by impersonated user) and OTS
//!   requests (test server counters) per share: while sharing, while tracking, on receipt.
//! - Memory: the operator's RSS idle, with M shares, and with U unrelated 100 KiB Secrets.
//! - Live links (`--live-links N`, a run of its own): N live links tracked at the default OTS
//!   rate, batch mode side by side with per-link mode (see `live.rs`).
//!
//! Usually started by `testing/bench/run`, which builds the release operator first.

mod audit;
mod cluster;
mod cpu;
mod floor;
mod live;
mod operator;
mod report;
mod workload;

use clap::Parser;
use cluster::ControlPlane;
use operator::OperatorProcess;
use ots_operator::ots::{ClientConfig, Credentials, ExposeSecret, OtsClient};
use ots_testserver::{Account, Config, Stats, TestServer};
use report::{Figures, kib_to_mib, per, percentile};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workload::Watch;

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A step did not work out.
    #[error("{0}")]
    Failed(String),
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A Kubernetes request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The kubeconfig could not be loaded.
    #[error(transparent)]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// An OTS request failed.
    #[error(transparent)]
    Ots(#[from] ots_operator::ots::OtsError),
    /// The operator's value building refused a Secret.
    #[error(transparent)]
    Operator(#[from] ots_operator::Error),
    /// JSON could not be built or read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Command line of `ots-bench`.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Benchmarks ots-operator: throughput, memory and API calls per share"
)]
struct Args {
    /// Small sizes for a quick check (CI): 50 shares, 5 script items, 300 shares and 100
    /// unrelated Secrets for memory, 20 s of tracking, refresh 5s..20s.
    #[arg(long)]
    smoke: bool,
    /// Shares per throughput run.
    #[arg(long)]
    shares: Option<usize>,
    /// Items the kubectl+curl script runs (the rest is extrapolated).
    #[arg(long)]
    script_sample: Option<usize>,
    /// Shares held by the operator in the memory run.
    #[arg(long)]
    memory_shares: Option<usize>,
    /// OtsServers in the memory run, share i naming server i mod N (issue 23: 100 servers and
    /// 5,000 shares within the per-share memory bar); 0: the shares name no server.
    #[arg(long, default_value_t = 0)]
    memory_servers: usize,
    /// Unrelated Secrets added in the memory run.
    #[arg(long)]
    unrelated: Option<usize>,
    /// Size of each unrelated Secret, KiB.
    #[arg(long, default_value_t = 100)]
    unrelated_kib: usize,
    /// Seconds of tracking during which requests are counted.
    #[arg(long)]
    tracking_secs: Option<u64>,
    /// The operator's --refresh-min in the throughput run.
    #[arg(long)]
    refresh_min: Option<String>,
    /// The operator's --refresh-max in the throughput run.
    #[arg(long)]
    refresh_max: Option<String>,
    /// Reconciles (operator) and requests (floor) in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// OTS requests per second allowed to the operator (its default, 2, is for the public service).
    #[arg(long, default_value_t = 100_000.0)]
    ots_rate: f64,
    /// The operator binary (build it with `cargo build --release --bin ots-operator`).
    #[arg(long, env = "OTS_BENCH_OPERATOR")]
    operator: Option<PathBuf>,
    /// Skip the throughput and API-economy run.
    #[arg(long)]
    skip_throughput: bool,
    /// Skip the memory run.
    #[arg(long)]
    skip_memory: bool,
    /// The binaries are an unoptimized dev build (`run --dev-build`, what CI's smoke run uses to
    /// skip a release build): times and memory are printed but judged against no target; the
    /// request counts per share are judged as usual, since the build does not change them.
    #[arg(long)]
    unoptimized: bool,
    /// Run only the live-links scenario with this many live links per mode (issue 24): batch
    /// mode, then per-link mode (the server without the batch route), at --ots-rate 2.
    #[arg(long)]
    live_links: Option<usize>,
    /// Live links: seconds of the window in which links are revealed and probes run.
    #[arg(long, default_value_t = 300)]
    live_window: u64,
    /// Live links: links revealed at random moments during the window.
    #[arg(long, default_value_t = 200)]
    live_reveals: usize,
    /// Live links: probe shares created (and deleted once Shared) during the window.
    #[arg(long, default_value_t = 20)]
    live_probes: usize,
    /// Live links: seconds a revealed link may take to be Received before it counts as "not
    /// seen within cap".
    #[arg(long, default_value_t = 600)]
    live_cap: u64,
    /// Live links: seconds after the tracking operator is ready before anything is counted.
    #[arg(long, default_value_t = 60)]
    live_settle: u64,
    /// Live links: seconds of the quiet spell (nothing happens; requests per idle link).
    #[arg(long, default_value_t = 60)]
    live_quiet: u64,
    /// Live links: only this mode (`batch` or `per-link`); default both.
    #[arg(long)]
    live_mode: Option<String>,
}

/// Sizes of one run.
struct Plan {
    shares: usize,
    script_sample: usize,
    memory_shares: usize,
    memory_servers: usize,
    unrelated: usize,
    unrelated_bytes: usize,
    tracking: Duration,
    refresh_min: String,
    refresh_max: String,
    concurrency: usize,
    ots_rate: f64,
    operator: PathBuf,
}

const OTS_USER: &str = "bench@example.com";
const OTS_TOKEN: &str = "bench-api-token";
const WAIT: Duration = Duration::from_secs(900);

fn plan(args: &Args) -> Result<Plan, BenchError> {
    let smoke = args.smoke;
    let operator = match &args.operator {
        Some(path) => path.clone(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| cluster::repo_root().join("target"));
            target.join("release/ots-operator")
        }
    };
    if !operator.is_file() {
        return Err(BenchError::Failed(format!(
            "no operator binary at {} (cargo build --release --bin ots-operator, or --operator)",
            operator.display()
        )));
    }
    let pick = |value: Option<usize>, small: usize, full: usize| {
        value.unwrap_or(if smoke { small } else { full })
    };
    Ok(Plan {
        shares: pick(args.shares, 50, 500),
        script_sample: pick(args.script_sample, 5, 25),
        memory_shares: pick(args.memory_shares, 300, 5000),
        memory_servers: args.memory_servers,
        unrelated: pick(args.unrelated, 100, 5000),
        unrelated_bytes: args.unrelated_kib * 1024,
        tracking: Duration::from_secs(args.tracking_secs.unwrap_or(if smoke { 20 } else { 120 })),
        refresh_min: args
            .refresh_min
            .clone()
            .unwrap_or_else(|| if smoke { "5s" } else { "30s" }.into()),
        refresh_max: args
            .refresh_max
            .clone()
            .unwrap_or_else(|| if smoke { "20s" } else { "15m" }.into()),
        concurrency: args.concurrency,
        ots_rate: args.ots_rate,
        operator,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let result = async {
        let plan = plan(&args)?;
        let mut figures = Figures {
            unoptimized: args.unoptimized,
            ..Figures::default()
        };
        if args.unoptimized {
            println!(
                "== unoptimized dev build: times and memory below show the benchmark works, not how fast or lean the operator is (testing/bench/run measures that)"
            );
        }
        if let Some(links) = args.live_links {
            let modes = match args.live_mode.as_deref() {
                None => vec![live::Mode::Batch, live::Mode::PerLink],
                Some("batch") => vec![live::Mode::Batch],
                Some("per-link") => vec![live::Mode::PerLink],
                Some(other) => {
                    return Err(BenchError::Failed(format!(
                        "--live-mode {other:?}: expected batch or per-link"
                    )));
                }
            };
            let live = live::LivePlan {
                links,
                window: Duration::from_secs(args.live_window),
                reveals: args.live_reveals,
                probes: args.live_probes,
                cap: Duration::from_secs(args.live_cap),
                settle: Duration::from_secs(args.live_settle),
                quiet: Duration::from_secs(args.live_quiet),
                modes,
                refresh: (args.refresh_min.clone(), args.refresh_max.clone()),
            };
            return live::run(&plan, &live).await;
        }
        if !args.skip_throughput {
            throughput(&plan, &mut figures).await?;
        }
        if !args.skip_memory {
            memory(&plan, &mut figures).await?;
        }
        figures.summary();
        Ok::<_, BenchError>(())
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ots-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn test_server() -> Result<TestServer, BenchError> {
    Ok(TestServer::start_in_thread(Config {
        accounts: vec![Account::new(OTS_USER, OTS_TOKEN)],
        ..Config::default()
    })?)
}

fn ots_client(server: &TestServer) -> Result<OtsClient, BenchError> {
    let url = url::Url::parse(&server.url()).map_err(|e| BenchError::Failed(e.to_string()))?;
    Ok(OtsClient::new(ClientConfig::new(url).with_credentials(
        Credentials::new(OTS_USER, OTS_TOKEN.to_owned()),
    ))?)
}

fn operator_args(plan: &Plan, server: &TestServer, namespaces: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--ots-url".into(),
        server.url(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--ots-rate".into(),
        plan.ots_rate.to_string(),
        "--ots-burst".into(),
        "100000".into(),
        "--ots-max-in-flight".into(),
        plan.concurrency.to_string(),
        "--concurrency".into(),
        plan.concurrency.to_string(),
        // One namespace, as the floor loop: all of the slots, not the default half.
        "--concurrency-per-namespace".into(),
        plan.concurrency.to_string(),
    ];
    for ns in namespaces {
        args.push("--namespace".into());
        args.push((*ns).to_owned());
    }
    args
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ots-bench-{name}-{}.log", std::process::id()))
}

/// OTS requests per operation since the last reset.
fn ots_counts(stats: &Stats) -> audit::Counts {
    stats
        .by_operation
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

async fn throughput(plan: &Plan, figures: &mut Figures) -> Result<(), BenchError> {
    let n = plan.shares;
    println!(
        "== throughput and API economy: {n} shares, concurrency {}",
        plan.concurrency
    );
    println!(
        "   operator: {} --ots-rate {} --ots-burst 100000 --ots-max-in-flight {c} --concurrency {c} \
         --concurrency-per-namespace {c} --refresh-min {} --refresh-max {} (the default \
         --ots-rate 2 is for the public service)",
        plan.operator.display(),
        plan.ots_rate,
        plan.refresh_min,
        plan.refresh_max,
        c = plan.concurrency,
    );
    let cp = ControlPlane::up("throughput")?;
    let client = cp.client().await?;
    let server = test_server()?;
    let ots = ots_client(&server)?;
    for ns in [
        "bench-floor",
        "bench-floor-contract",
        "bench-backlog",
        "bench-live",
        "bench-script",
    ] {
        workload::namespace(&client, ns).await?;
    }
    let prepared = Instant::now();
    for ns in [
        "bench-floor",
        "bench-floor-contract",
        "bench-backlog",
        "bench-live",
    ] {
        workload::create_sources(&client, ns, 0..n).await?;
    }
    workload::create_sources(&client, "bench-script", 0..plan.script_sample).await?;
    for ns in ["bench-floor", "bench-floor-contract", "bench-backlog"] {
        workload::create_shares(&client, ns, 0..n).await?;
    }
    workload::create_shares(&client, "bench-script", 0..plan.script_sample).await?;
    println!(
        "   inputs created in {:.1}s",
        prepared.elapsed().as_secs_f64()
    );

    let (apiserver, etcd) = cp.pids;
    let mut processes = vec![
        ("apiserver", apiserver),
        ("etcd", etcd),
        ("bench+ots-testserver", std::process::id()),
    ];

    // (a) The floor: a bare loop, same calls, same concurrency.
    let cpu = cpu::Snapshot::take(&processes);
    let floor = floor::run(
        &client,
        &ots,
        "bench-floor",
        n,
        plan.concurrency,
        floor::Calls::Bare,
    )
    .await?;
    report::line(
        "floor (bare loop: get Secret, share, apply status)",
        n,
        floor,
    );
    println!("     CPU: {}", cpu::Snapshot::take(&processes).since(&cpu));
    figures.floor = Some(floor);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu::Snapshot::take(&processes);
    let contract = floor::run(
        &client,
        &ots,
        "bench-floor-contract",
        n,
        plan.concurrency,
        floor::Calls::Contract,
    )
    .await?;
    report::line(
        "floor with the contract's writes (+ finalizer patch, + record Secret, + Event)",
        n,
        contract,
    );
    println!("     CPU: {}", cpu::Snapshot::take(&processes).since(&cpu));
    figures.floor_contract = Some(contract);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The operator on a backlog: all resources exist when it starts.
    server.reset_stats();
    let mark = cp.audit_mark();
    let watch = Watch::start(&client, "bench-backlog", workload::is_shared);
    let cpu = cpu::Snapshot::take(&processes);
    let started = Instant::now();
    let op = OperatorProcess::start(
        &plan.operator,
        &cp.operator_kubeconfig,
        &[
            operator_args(plan, &server, &["bench-backlog", "bench-live"]),
            vec![
                "--refresh-min".into(),
                plan.refresh_min.clone(),
                "--refresh-max".into(),
                plan.refresh_max.clone(),
            ],
        ]
        .concat(),
        (OTS_USER, OTS_TOKEN),
        log_path("throughput-operator"),
    )?;
    watch.wait_for(n, WAIT).await?;
    let backlog = started.elapsed();
    report::line(
        "operator, backlog (process start to all Shared)",
        n,
        backlog,
    );
    processes.push(("operator", op.pid()));
    println!("     CPU: {}", cpu::Snapshot::take(&processes).since(&cpu));
    let done: Vec<Duration> = watch
        .seen()
        .values()
        .map(|(at, _)| at.saturating_duration_since(started))
        .collect();
    println!(
        "     time to Shared since start: p50 {:.0} ms, p99 {:.0} ms",
        ms(percentile(&done, 0.50)),
        ms(percentile(&done, 0.99))
    );
    figures.backlog = Some(backlog);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api = audit::operator_requests(&cp.audit_log, mark, cp.audit_mark())?;
    report::economy("operator, backlog", n, &api, &ots_counts(&server.stats()));
    figures.sharing_api = Some((api, n));
    drop(watch);

    // The operator with shares created while it runs: latency from create to Shared.
    server.reset_stats();
    let mark = cp.audit_mark();
    let watch = Watch::start(&client, "bench-live", workload::is_shared);
    let cpu = cpu::Snapshot::take(&processes);
    let started = Instant::now();
    let sent = workload::create_shares(&client, "bench-live", 0..n).await?;
    watch.wait_for(n, WAIT).await?;
    println!(
        "     CPU (creating the shares included): {}",
        cpu::Snapshot::take(&processes).since(&cpu)
    );
    let seen = watch.seen();
    let live = seen
        .values()
        .map(|(at, _)| at.saturating_duration_since(started))
        .max()
        .unwrap_or_default();
    report::line("operator, live (first create to all Shared)", n, live);
    let latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(name, (at, _))| sent.get(name).map(|s| at.saturating_duration_since(*s)))
        .collect();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "     per-resource latency, create request to Shared observed: p50 {:.0} ms, p99 {:.0} ms",
        ms(p50),
        ms(p99)
    );
    figures.live = Some(live);
    figures.latency = Some((p50, p99));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api = audit::operator_requests(&cp.audit_log, mark, cp.audit_mark())?;
    report::economy(
        "operator, live (includes the backlog's tracking, if due)",
        n,
        &api,
        &ots_counts(&server.stats()),
    );
    let links: Vec<String> = seen
        .values()
        .filter_map(|(_, obj)| obj.status.as_ref().and_then(|s| s.link.clone()))
        .collect();
    drop(watch);

    // Tracking: nothing happens to the links; count what the operator does.
    server.reset_stats();
    let mark = cp.audit_mark();
    println!(
        "   tracking window: {}s with {} live links",
        plan.tracking.as_secs(),
        2 * n
    );
    tokio::time::sleep(plan.tracking).await;
    let api = audit::operator_requests(&cp.audit_log, mark, cp.audit_mark())?;
    let minutes = plan.tracking.as_secs_f64() / 60.0;
    let otsc = ots_counts(&server.stats());
    report::economy("operator, tracking (whole window)", 2 * n, &api, &otsc);
    println!(
        "     receipt checks per link per minute: {:.2}",
        per(audit::sum(&otsc, |k| k == "receipt"), 2 * n) / minutes
    );
    figures.tracking = Some((api, otsc, 2 * n, plan.tracking));

    // Received: the recipients open the live links; the operator notices on its next check.
    server.reset_stats();
    let mark = cp.audit_mark();
    let watch = Watch::start(&client, "bench-live", workload::is_received);
    let revealed = Instant::now();
    for (i, link) in links.iter().enumerate() {
        let key = link.rsplit('/').next().unwrap_or_default();
        let value = ots.reveal(key, None).await?;
        if !value.expose_secret().starts_with("bench-value-") {
            return Err(BenchError::Failed(format!(
                "link {i} revealed an unexpected value"
            )));
        }
    }
    watch.wait_for(n, WAIT).await?;
    println!(
        "   all {n} live links opened; the operator saw every receipt within {:.1}s",
        revealed.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api = audit::operator_requests(&cp.audit_log, mark, cp.audit_mark())?;
    let mut otsc = ots_counts(&server.stats());
    otsc.remove("reveal");
    report::economy(
        "operator, receipt (reveal to Received; the recipients' reveals not counted; receipt checks cover all tracked links)",
        n,
        &api,
        &otsc,
    );
    figures.received_api = Some((api, n));
    drop(watch);
    op.stop();

    // (b) The script users write today, on a sample.
    let script = cluster::repo_root().join("testing/bench/share-with-kubectl");
    let items: String = (0..plan.script_sample)
        .map(|i| {
            format!(
                "{} {} value\n",
                workload::share_name(i),
                workload::secret_name(i)
            )
        })
        .collect();
    let started = Instant::now();
    let mut child = std::process::Command::new(&script)
        .arg("bench-script")
        .env("KUBECTL", cp.bin_dir.join("kubectl"))
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("OTS_URL", server.url())
        .env("OTS_USERNAME", OTS_USER)
        .env("OTS_API_TOKEN", OTS_TOKEN)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(items.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(BenchError::Failed(format!("{} failed", script.display())));
    }
    let sample = started.elapsed();
    let extrapolated = sample.mul_f64(n as f64 / plan.script_sample as f64);
    println!(
        "   script (kubectl get | base64 -d | curl; kubectl patch), {} items in {:.2}s, \
         extrapolated to {n}: {:.1}s ({:.1} shares/s)",
        plan.script_sample,
        sample.as_secs_f64(),
        extrapolated.as_secs_f64(),
        n as f64 / extrapolated.as_secs_f64()
    );
    figures.script = Some(extrapolated);
    drop(server);
    drop(cp);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn memory(plan: &Plan, figures: &mut Figures) -> Result<(), BenchError> {
    println!(
        "== memory: {} shares, then {} unrelated Secrets of {} KiB; the operator watches all namespaces",
        plan.memory_shares,
        plan.unrelated,
        plan.unrelated_bytes / 1024
    );
    let cp = ControlPlane::up("memory")?;
    let client = cp.client().await?;
    let server = test_server()?;
    let mut op = OperatorProcess::start(
        &plan.operator,
        &cp.operator_kubeconfig,
        &operator_args(plan, &server, &[]),
        (OTS_USER, OTS_TOKEN),
        log_path("memory-operator"),
    )?;
    op.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = op.rss()?;
    println!(
        "   idle:                       RSS {:.1} MiB (peak {:.1} MiB)",
        kib_to_mib(idle.rss_kib),
        kib_to_mib(idle.hwm_kib)
    );

    workload::namespace(&client, "mem-shares").await?;
    workload::namespace(&client, "mem-unrelated").await?;
    let watch = Watch::start(&client, "mem-shares", workload::is_shared);
    if plan.memory_servers > 0 {
        workload::create_servers(
            &client,
            "mem-shares",
            plan.memory_servers,
            &server.url(),
            (OTS_USER, OTS_TOKEN),
        )
        .await?;
        println!(
            "   ({} OtsServers; share i names server i mod {})",
            plan.memory_servers, plan.memory_servers
        );
    }
    workload::create_sources(&client, "mem-shares", 0..plan.memory_shares).await?;
    workload::create_shares_via(
        &client,
        "mem-shares",
        0..plan.memory_shares,
        plan.memory_servers,
    )
    .await?;
    watch.wait_for(plan.memory_shares, WAIT).await?;
    drop(watch);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let with_shares = op.rss()?;
    println!(
        "   with {} shares:           RSS {:.1} MiB (peak {:.1} MiB)",
        plan.memory_shares,
        kib_to_mib(with_shares.rss_kib),
        kib_to_mib(with_shares.hwm_kib)
    );
    // The figure judged is the one 10 s after the last share was Shared, as before; this one says
    // how much of it was still the burst's work (follow-up reconciles, pooled buffers).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let settled = op.rss()?;
    println!(
        "   a minute later:             RSS {:.1} MiB ({:.1} KiB per share over idle; not judged)",
        kib_to_mib(settled.rss_kib),
        settled.rss_kib.saturating_sub(idle.rss_kib) as f64 / plan.memory_shares as f64
    );

    let started = Instant::now();
    workload::create_unrelated(
        &client,
        "mem-unrelated",
        plan.unrelated,
        plan.unrelated_bytes,
    )
    .await?;
    println!(
        "   ({} unrelated Secrets created in {:.1}s)",
        plan.unrelated,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let with_unrelated = op.rss()?;
    println!(
        "   plus {} unrelated Secrets: RSS {:.1} MiB (peak {:.1} MiB); they add {:+.1} MiB",
        plan.unrelated,
        kib_to_mib(with_unrelated.rss_kib),
        kib_to_mib(with_unrelated.hwm_kib),
        kib_to_mib(with_unrelated.rss_kib) - kib_to_mib(with_shares.rss_kib)
    );
    figures.memory = Some((
        idle,
        with_shares,
        with_unrelated,
        plan.memory_shares,
        plan.unrelated,
    ));
    op.stop();
    drop(server);
    drop(cp);
    Ok(())
}
