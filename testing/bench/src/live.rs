//! `--live-links N` (issue 24): N live links tracked by an operator at the default OTS rate
//! (2 calls/s), once with the server's batch status route (batch mode) and once on a server
//! without it (per-link mode: `Faults::batch_status_missing`, one receipt read per link).
//!
//! Per mode, on a fresh control plane and test server: N shares are made by an operator with a
//! high rate, which is then replaced by one with the defaults. After a settling spell and a
//! quiet spell (requests counted with nothing happening), a window opens in which R random links
//! are revealed through the server at random moments while P probe shares are created (at random
//! moments) and deleted once Shared. Measured: reveal → `Received` (watch) per revealed link,
//! create → `Shared` and delete → gone (the finalizer's burn done) per probe, OTS calls and
//! apiserver requests per minute, the operator's RSS. An idle operator (no links, same
//! defaults) gives the share and burn latencies to compare with, once.

use crate::audit::{self, Counts};
use crate::cluster::ControlPlane;
use crate::operator::{OperatorProcess, Rss};
use crate::report::{kib_to_mib, percentile};
use crate::workload::{self, share_name};
use crate::{BenchError, OTS_TOKEN, OTS_USER, Plan};
use futures::StreamExt;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use ots_operator::ots::{ExposeSecret, OtsClient};
use ots_operator::resource::{OneTimeShare, Phase};
use ots_testserver::{Faults, TestServer};
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Where the tracked links live.
const LIVE_NS: &str = "live";
/// Where the probe shares are created and deleted.
const PROBE_NS: &str = "probe";
/// How long a probe waits for `Shared` and for its deletion to finish.
const PROBE_LIMIT: Duration = Duration::from_secs(600);
/// How long a probe stays Shared before it is deleted.
const PROBE_HOLD: Duration = Duration::from_secs(2);

/// Sizes of a live-links run.
#[derive(Clone, Debug)]
pub struct LivePlan {
    /// Live links per mode.
    pub links: usize,
    /// The window in which links are revealed and probes run.
    pub window: Duration,
    /// Links revealed during the window.
    pub reveals: usize,
    /// Probe shares created (and deleted) during the window.
    pub probes: usize,
    /// How long after its reveal a link may take to be `Received` before it counts as not seen.
    pub cap: Duration,
    /// Wait after the default-rate operator is ready before anything is counted.
    pub settle: Duration,
    /// Spell with nothing happening in which requests per idle link are counted.
    pub quiet: Duration,
    /// Which modes run.
    pub modes: Vec<Mode>,
    /// `--refresh-min` / `--refresh-max` given to the tracking operator (`None`: its defaults).
    pub refresh: (Option<String>, Option<String>),
}

/// How the server lets the operator track links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The server has `POST /api/v2/secret/status`: up to 200 links per call.
    Batch,
    /// The server answers that route 404: one receipt read per link.
    PerLink,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::PerLink => "per-link",
        }
    }
}

/// What one mode measured.
struct ModeRun {
    mode: Mode,
    /// Per revealed link: reveal → Received, `None` when not seen within the cap.
    reveal: Vec<Option<Duration>>,
    /// Per revealed link the operator read the receipt of: reveal → that read reached the
    /// server, and the read → Received.
    reads: (Vec<Duration>, Vec<Duration>),
    probes: Probes,
    /// OTS calls by operation from the tracking operator's start to the end (reveals excluded).
    ots: Counts,
    /// Apiserver requests of the operator over the same period.
    api: Counts,
    /// Length of that period.
    period: Duration,
    /// OTS calls and apiserver requests in the quiet spell, and its length.
    quiet: (Counts, Counts, Duration),
    /// OTS calls in the window and the wait after it (reveals excluded), and its length.
    active_ots: (Counts, Duration),
    /// RSS after the quiet spell, and at the end.
    rss_quiet: Rss,
    rss_end: Rss,
    /// How long making the links took (the fast operator).
    made_in: Duration,
}

/// The probes' create → Shared and delete → gone latencies; probes that did not finish.
#[derive(Default)]
struct Probes {
    share: Vec<Duration>,
    burn: Vec<Duration>,
    failed: usize,
}

/// The idle operator's figures.
struct Idle {
    probes: Probes,
    rss: Rss,
}

/// Runs the scenario and prints its table.
pub async fn run(plan: &Plan, live: &LivePlan) -> Result<(), BenchError> {
    println!(
        "== live links: {} links per mode, the tracking operator at its defaults (--ots-rate 2, \
         --ots-burst 10, --ots-max-in-flight 8, --concurrency 32{}); settle {}s, quiet {}s, \
         window {}s with {} reveals and {} probe shares, cap {}s after each reveal",
        live.links,
        match &live.refresh {
            (None, None) => ", --refresh-min 30s, --refresh-max 15m".to_owned(),
            (min, max) => format!(
                ", --refresh-min {}, --refresh-max {}",
                min.as_deref().unwrap_or("30s"),
                max.as_deref().unwrap_or("15m")
            ),
        },
        live.settle.as_secs(),
        live.quiet.as_secs(),
        live.window.as_secs(),
        live.reveals,
        live.probes,
        live.cap.as_secs()
    );
    let mut idle = None;
    let mut runs = Vec::new();
    for mode in &live.modes {
        let run = one_mode(plan, live, *mode, &mut idle).await?;
        runs.push(run);
    }
    if let Some(idle) = &idle {
        table(live, idle, &runs);
    }
    Ok(())
}

fn tracking_args(server: &TestServer, live: &LivePlan) -> Vec<String> {
    let mut args = vec![
        "--ots-url".into(),
        server.url(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(min) = &live.refresh.0 {
        args.extend(["--refresh-min".into(), min.clone()]);
    }
    if let Some(max) = &live.refresh.1 {
        args.extend(["--refresh-max".into(), max.clone()]);
    }
    args
}

async fn one_mode(
    plan: &Plan,
    live: &LivePlan,
    mode: Mode,
    idle: &mut Option<Idle>,
) -> Result<ModeRun, BenchError> {
    let n = live.links;
    println!("-- {} mode", mode.label());
    let cp = ControlPlane::up(&format!("live-{}", mode.label()))?;
    let client = cp.client().await?;
    let server = crate::test_server()?;
    let server_started = Instant::now();
    if mode == Mode::PerLink {
        server.set_faults(Faults {
            batch_status_missing: true,
            ..Faults::default()
        });
    }
    let ots = crate::ots_client(&server)?;
    workload::namespace(&client, LIVE_NS).await?;
    workload::namespace(&client, PROBE_NS).await?;
    // Probe sources: the idle spell uses 0..P, the window P..2P.
    workload::create_sources(&client, PROBE_NS, 0..2 * live.probes).await?;
    let probes_ns = Timeline::start(&client, PROBE_NS);

    if idle.is_none() {
        // The idle operator: the same defaults, no links.
        let mut op = OperatorProcess::start(
            &plan.operator,
            &cp.operator_kubeconfig,
            &tracking_args(&server, live),
            (OTS_USER, OTS_TOKEN),
            crate::log_path("live-idle-operator"),
        )?;
        op.wait_ready(Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let spell = live.window.min(Duration::from_secs(60));
        println!(
            "   idle operator: {} probe shares created at random moments over {}s, each deleted {}s after Shared",
            live.probes,
            spell.as_secs(),
            PROBE_HOLD.as_secs()
        );
        let probes = run_probes(&client, &probes_ns, 0..live.probes, spell).await;
        let rss = op.rss()?;
        println!(
            "   idle operator: share p95 {}, burn p95 {}, RSS {:.1} MiB",
            secs(percentile(&probes.share, 0.95)),
            secs(percentile(&probes.burn, 0.95)),
            kib_to_mib(rss.rss_kib)
        );
        op.stop();
        *idle = Some(Idle { probes, rss });
    }

    // N live links, made fast.
    let made = Instant::now();
    workload::create_sources(&client, LIVE_NS, 0..n).await?;
    let links_ns = Timeline::start(&client, LIVE_NS);
    workload::create_shares(&client, LIVE_NS, 0..n).await?;
    let fast = OperatorProcess::start(
        &plan.operator,
        &cp.operator_kubeconfig,
        &crate::operator_args(plan, &server, &[]),
        (OTS_USER, OTS_TOKEN),
        crate::log_path(&format!("live-{}-fast-operator", mode.label())),
    )?;
    links_ns
        .wait(n, |t| t.shared.is_some(), crate::WAIT.max(live.cap))
        .await?;
    fast.stop();
    let made_in = made.elapsed();
    println!(
        "   {n} live links made in {:.0}s (sources, shares, an operator at --ots-rate {})",
        made_in.as_secs_f64(),
        plan.ots_rate
    );

    // The operator at its defaults.
    server.reset_stats();
    let mark = cp.audit_mark();
    let began = Instant::now();
    let mut op = OperatorProcess::start(
        &plan.operator,
        &cp.operator_kubeconfig,
        &tracking_args(&server, live),
        (OTS_USER, OTS_TOKEN),
        crate::log_path(&format!("live-{}-operator", mode.label())),
    )?;
    op.wait_ready(Duration::from_secs(120)).await?;
    tokio::time::sleep(live.settle).await;
    let quiet_stats = server.stats();
    let quiet_mark = cp.audit_mark();
    let quiet_began = Instant::now();
    tokio::time::sleep(live.quiet).await;
    let quiet_len = quiet_began.elapsed();
    let quiet_api = audit::operator_requests(&cp.audit_log, quiet_mark, cp.audit_mark())?;
    let quiet_ots = diff(&crate::ots_counts(&server.stats()), &quiet_stats);
    let rss_quiet = op.rss()?;
    println!(
        "   quiet {}s: {} OTS calls ({}), {} apiserver requests; RSS {:.1} MiB",
        quiet_len.as_secs(),
        quiet_ots.values().sum::<u64>(),
        by_op(&quiet_ots, quiet_len),
        quiet_api.values().sum::<u64>(),
        kib_to_mib(rss_quiet.rss_kib)
    );

    // The window: reveals and probes at random moments.
    let active_stats = server.stats();
    let active_began = Instant::now();
    let mut rng = rand::rng();
    let mut chosen: Vec<usize> = (0..n).collect();
    chosen.shuffle(&mut rng);
    chosen.truncate(live.reveals.min(n));
    let mut schedule: Vec<(Duration, usize)> = chosen
        .into_iter()
        .map(|i| (live.window.mul_f64(rng.random_range(0.0..1.0)), i))
        .collect();
    schedule.sort();
    let revealed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reveals = reveal_all(&ots, &links_ns, &schedule, active_began, &revealed);
    let probes = run_probes(
        &client,
        &probes_ns,
        live.probes..2 * live.probes,
        live.window,
    );
    let (reveals, probes) = tokio::join!(reveals, probes);
    reveals?;
    let revealed = revealed.lock().map(|m| m.clone()).unwrap_or_default();
    // Wait until every revealed link is Received, or its cap passed.
    let last = revealed.values().max().copied().unwrap_or(active_began);
    loop {
        let received = revealed
            .keys()
            .filter(|name| links_ns.get(name).is_some_and(|t| t.received.is_some()))
            .count();
        if received == revealed.len() || Instant::now() >= last + live.cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let active_len = active_began.elapsed();
    let active_ots = without_reveals(diff(&crate::ots_counts(&server.stats()), &active_stats));
    let reveal: Vec<Option<Duration>> = revealed
        .iter()
        .map(|(name, at)| {
            links_ns
                .get(name)
                .and_then(|t| t.received)
                .map(|r| r.saturating_duration_since(*at))
                .filter(|d| *d <= live.cap)
        })
        .collect();
    let reads = receipt_reads(&server, server_started, &links_ns, &revealed);
    let period = began.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api = audit::operator_requests(&cp.audit_log, mark, cp.audit_mark())?;
    let ots_all = without_reveals(crate::ots_counts(&server.stats()));
    let rss_end = op.rss()?;
    op.stop();
    let run = ModeRun {
        mode,
        reveal,
        reads,
        probes,
        ots: ots_all,
        api,
        period,
        quiet: (quiet_ots, quiet_api, quiet_len),
        active_ots: (active_ots, active_len),
        rss_quiet,
        rss_end,
        made_in,
    };
    let seen = run.reveal.iter().flatten().count();
    println!(
        "   {} mode: {seen} of {} revealed links Received within {}s; reveal → Received p50 {} p95 {} max {}",
        mode.label(),
        run.reveal.len(),
        live.cap.as_secs(),
        capped(&run.reveal, 0.50),
        capped(&run.reveal, 0.95),
        capped(&run.reveal, 1.0),
    );
    drop(links_ns);
    drop(probes_ns);
    drop(server);
    drop(cp);
    Ok(run)
}

/// Per revealed link, from the server's request log: reveal → the operator's first read of its
/// receipt after the reveal (the link was found spent and its share woken, or its own check
/// came), and that read → `Received` observed. Tells detection from what follows it.
fn receipt_reads(
    server: &TestServer,
    server_started: Instant,
    links: &Timeline,
    revealed: &HashMap<String, Instant>,
) -> (Vec<Duration>, Vec<Duration>) {
    let log = server.requests();
    let receipts: Vec<(Instant, &str)> = log
        .iter()
        .filter(|r| r.operation == "receipt")
        .map(|r| (server_started + r.at, r.path.as_str()))
        .collect();
    let (mut detect, mut then) = (Vec::new(), Vec::new());
    for (name, at) in revealed {
        let Some(times) = links.get(name) else {
            continue;
        };
        let Some(key) = times.metadata_key.as_deref() else {
            continue;
        };
        let first = receipts
            .iter()
            .filter(|(t, path)| *t >= *at && path.ends_with(key))
            .map(|(t, _)| *t)
            .min();
        if let Some(first) = first {
            detect.push(first.saturating_duration_since(*at));
            if let Some(received) = times.received {
                then.push(received.saturating_duration_since(first));
            }
        }
    }
    (detect, then)
}

/// Reveals each scheduled link through the server at its moment.
async fn reveal_all(
    ots: &OtsClient,
    links: &Timeline,
    schedule: &[(Duration, usize)],
    began: Instant,
    revealed: &Mutex<HashMap<String, Instant>>,
) -> Result<(), BenchError> {
    for (at, i) in schedule {
        tokio::time::sleep_until(began + *at).await;
        let name = share_name(*i);
        let link = links
            .link(&name)
            .ok_or_else(|| BenchError::Failed(format!("{name} has no link")))?;
        let key = link.rsplit('/').next().unwrap_or_default().to_owned();
        let now = Instant::now();
        let value = ots.reveal(&key, None).await?;
        if !value.expose_secret().starts_with("bench-value-") {
            return Err(BenchError::Failed(format!(
                "{name}'s link revealed an unexpected value"
            )));
        }
        if let Ok(mut map) = revealed.lock() {
            map.insert(name, now);
        }
    }
    Ok(())
}

/// Creates probe shares `range` at random moments over `spell`, deletes each `PROBE_HOLD` after
/// it is Shared; their latencies.
async fn run_probes(
    client: &Client,
    timeline: &Timeline,
    range: std::ops::Range<usize>,
    spell: Duration,
) -> Probes {
    let began = Instant::now();
    let mut rng = rand::rng();
    let runs = range.map(|i| {
        let at = began + spell.mul_f64(rng.random_range(0.0..1.0));
        probe(client, timeline, i, at)
    });
    let mut probes = Probes::default();
    for outcome in futures::future::join_all(runs.collect::<Vec<_>>()).await {
        match outcome {
            Ok((share, burn)) => {
                probes.share.push(share);
                probes.burn.push(burn);
            }
            Err(e) => {
                eprintln!("   a probe share did not finish: {e}");
                probes.failed += 1;
            }
        }
    }
    probes
}

async fn probe(
    client: &Client,
    timeline: &Timeline,
    i: usize,
    at: Instant,
) -> Result<(Duration, Duration), BenchError> {
    tokio::time::sleep_until(at).await;
    let api: Api<OneTimeShare> = Api::namespaced(client.clone(), PROBE_NS);
    let name = share_name(i);
    let sent = Instant::now();
    api.create(&PostParams::default(), &workload::share(i)?)
        .await?;
    let shared = timeline
        .until(&name, |t| t.shared, PROBE_LIMIT)
        .await
        .ok_or_else(|| BenchError::Failed(format!("{name} not Shared in {PROBE_LIMIT:?}")))?;
    tokio::time::sleep(PROBE_HOLD).await;
    let deleted = Instant::now();
    api.delete(&name, &DeleteParams::default()).await?;
    let gone = timeline
        .until(&name, |t| t.gone, PROBE_LIMIT)
        .await
        .ok_or_else(|| BenchError::Failed(format!("{name} not gone in {PROBE_LIMIT:?}")))?;
    Ok((
        shared.saturating_duration_since(sent),
        gone.saturating_duration_since(deleted),
    ))
}

/// When a share was first seen Shared, Received and gone, and its link.
#[derive(Clone, Default)]
struct Times {
    shared: Option<Instant>,
    received: Option<Instant>,
    gone: Option<Instant>,
    /// The link (a capability: used to reveal, never printed).
    link: Option<String>,
    /// The receipt's metadata key (a capability: matched against the server's request log,
    /// never printed).
    metadata_key: Option<String>,
}

/// A watch of one namespace's shares that timestamps what happens to each.
struct Timeline {
    times: Arc<Mutex<HashMap<String, Times>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Timeline {
    fn start(client: &Client, ns: &str) -> Timeline {
        let api: Api<OneTimeShare> = Api::namespaced(client.clone(), ns);
        let times: Arc<Mutex<HashMap<String, Times>>> = Arc::default();
        let record = times.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let (obj, deleted) = match event {
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => (obj, false),
                    Ok(watcher::Event::Delete(obj)) => (obj, true),
                    _ => continue,
                };
                let now = Instant::now();
                let Ok(mut map) = record.lock() else {
                    continue;
                };
                let entry = map
                    .entry(obj.metadata.name.clone().unwrap_or_default())
                    .or_default();
                if deleted {
                    entry.gone.get_or_insert(now);
                    continue;
                }
                if workload::is_shared(&obj) && entry.shared.is_none() {
                    entry.shared = Some(now);
                    entry.link = obj.status.as_ref().and_then(|s| s.link.clone());
                    entry.metadata_key = obj.status.as_ref().and_then(|s| s.metadata_key.clone());
                }
                if obj
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::Received)
                {
                    entry.received.get_or_insert(now);
                }
            }
        });
        Timeline { times, task }
    }

    fn get(&self, name: &str) -> Option<Times> {
        self.times.lock().ok()?.get(name).cloned()
    }

    fn link(&self, name: &str) -> Option<String> {
        self.get(name)?.link
    }

    /// Waits until `n` shares satisfy `done`.
    async fn wait(
        &self,
        n: usize,
        done: fn(&Times) -> bool,
        limit: Duration,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            let count = self
                .times
                .lock()
                .map(|m| m.values().filter(|t| done(t)).count())
                .unwrap_or_default();
            if count >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Failed(format!(
                    "only {count} of {n} shares got there in {limit:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `field` of share `name` is set; `None` after `limit`.
    async fn until(
        &self,
        name: &str,
        field: fn(&Times) -> Option<Instant>,
        limit: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.get(name).as_ref().and_then(field) {
                return Some(at);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts now minus the counts of an earlier snapshot.
fn diff(now: &Counts, before: &ots_testserver::Stats) -> Counts {
    now.iter()
        .map(|(k, v)| {
            let was = before.by_operation.get(k).copied().unwrap_or_default();
            (k.clone(), v.saturating_sub(was))
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// The recipients' reveals are the benchmark's calls, not the operator's.
fn without_reveals(mut counts: Counts) -> Counts {
    counts.remove("reveal");
    counts
}

fn per_minute(count: u64, over: Duration) -> f64 {
    count as f64 / (over.as_secs_f64() / 60.0).max(f64::MIN_POSITIVE)
}

/// `op n/min, ...`.
fn by_op(counts: &Counts, over: Duration) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", per_minute(*v, over)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The `q` quantile (nearest rank) where `None` (not seen within the cap) ranks last.
fn capped_quantile(values: &[Option<Duration>], q: f64) -> Option<Option<Duration>> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by_key(|v| v.unwrap_or(Duration::MAX));
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn capped(values: &[Option<Duration>], q: f64) -> String {
    match capped_quantile(values, q) {
        None => "–".into(),
        Some(Some(d)) => format!("{:.1}s", d.as_secs_f64()),
        Some(None) => "> cap".into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The side-by-side table and the targets for batch mode.
fn table(live: &LivePlan, idle: &Idle, runs: &[ModeRun]) {
    let n = live.links;
    println!(
        "== live links, side by side ({n} links, --ots-rate 2; {} reveals over {}s, cap {}s; {} probes)",
        live.reveals,
        live.window.as_secs(),
        live.cap.as_secs(),
        live.probes
    );
    let mut header = format!("   {:<52} {:>16}", "figure", "idle operator");
    for run in runs {
        header.push_str(&format!(" {:>22}", run.mode.label()));
    }
    println!("{header}");
    let row = |what: &str, idle: String, per: &dyn Fn(&ModeRun) -> String| {
        let mut line = format!("   {what:<52} {idle:>16}");
        for run in runs {
            line.push_str(&format!(" {:>22}", per(run)));
        }
        println!("{line}");
    };
    row("links made (fast operator) in", "–".into(), &|r| {
        format!("{:.0}s", r.made_in.as_secs_f64())
    });
    row("reveal → Received p50 / p95", "–".into(), &|r| {
        format!("{} / {}", capped(&r.reveal, 0.5), capped(&r.reveal, 0.95))
    });
    row("reveal → Received max", "–".into(), &|r| {
        capped(&r.reveal, 1.0)
    });
    row(
        "reveal → receipt read p50 / p95 (n)",
        "–".into(),
        &|r| {
            format!(
                "{} / {} ({})",
                secs(percentile(&r.reads.0, 0.5)),
                secs(percentile(&r.reads.0, 0.95)),
                r.reads.0.len()
            )
        },
    );
    row("receipt read → Received p50 / p95", "–".into(), &|r| {
        format!(
            "{} / {}",
            secs(percentile(&r.reads.1, 0.5)),
            secs(percentile(&r.reads.1, 0.95))
        )
    });
    row(
        "revealed links not Received within cap",
        "–".into(),
        &|r| {
            format!(
                "{} of {}",
                r.reveal.iter().filter(|v| v.is_none()).count(),
                r.reveal.len()
            )
        },
    );
    row(
        "share latency p50 / p95 (create → Shared)",
        format!(
            "{} / {}",
            secs(percentile(&idle.probes.share, 0.5)),
            secs(percentile(&idle.probes.share, 0.95))
        ),
        &|r| {
            format!(
                "{} / {}",
                secs(percentile(&r.probes.share, 0.5)),
                secs(percentile(&r.probes.share, 0.95))
            )
        },
    );
    row(
        "burn latency p50 / p95 (delete → gone)",
        format!(
            "{} / {}",
            secs(percentile(&idle.probes.burn, 0.5)),
            secs(percentile(&idle.probes.burn, 0.95))
        ),
        &|r| {
            format!(
                "{} / {}",
                secs(percentile(&r.probes.burn, 0.5)),
                secs(percentile(&r.probes.burn, 0.95))
            )
        },
    );
    row(
        "probes that did not finish",
        idle.probes.failed.to_string(),
        &|r| r.probes.failed.to_string(),
    );
    row(
        "OTS calls/min, whole run (reveals excluded)",
        "–".into(),
        &|r| format!("{:.1}", per_minute(r.ots.values().sum(), r.period)),
    );
    row("OTS calls/min, window + wait", "–".into(), &|r| {
        format!(
            "{:.1}",
            per_minute(r.active_ots.0.values().sum(), r.active_ots.1)
        )
    });
    row("OTS calls/min, quiet spell", "–".into(), &|r| {
        format!("{:.1}", per_minute(r.quiet.0.values().sum(), r.quiet.2))
    });
    row("apiserver requests/min, whole run", "–".into(), &|r| {
        format!("{:.1}", per_minute(r.api.values().sum(), r.period))
    });
    row(
        "apiserver requests per idle link per min (quiet)",
        "–".into(),
        &|r| {
            format!(
                "{:.4}",
                per_minute(r.quiet.1.values().sum(), r.quiet.2) / n.max(1) as f64
            )
        },
    );
    row(
        "RSS after the quiet spell (peak so far)",
        format!(
            "{:.1} MiB ({:.1})",
            kib_to_mib(idle.rss.rss_kib),
            kib_to_mib(idle.rss.hwm_kib)
        ),
        &|r| {
            format!(
                "{:.1} MiB ({:.1})",
                kib_to_mib(r.rss_quiet.rss_kib),
                kib_to_mib(r.rss_quiet.hwm_kib)
            )
        },
    );
    row("RSS at the end (peak)", "–".into(), &|r| {
        format!(
            "{:.1} MiB ({:.1})",
            kib_to_mib(r.rss_end.rss_kib),
            kib_to_mib(r.rss_end.hwm_kib)
        )
    });
    row("RSS over idle per live link", "–".into(), &|r| {
        let over = r.rss_quiet.rss_kib.saturating_sub(idle.rss.rss_kib);
        format!("{:.2} KiB", over as f64 / n.max(1) as f64)
    });
    for run in runs {
        println!(
            "   {} OTS calls/min by operation, whole run: {}",
            run.mode.label(),
            by_op(&run.ots, run.period)
        );
        println!(
            "   {} apiserver requests, whole run ({:.0}s): {}",
            run.mode.label(),
            run.period.as_secs_f64(),
            run.api
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !run.quiet.1.is_empty() {
            println!(
                "   {} apiserver requests in the quiet spell: {}",
                run.mode.label(),
                run.quiet
                    .1
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(batch) = runs.iter().find(|r| r.mode == Mode::Batch) {
        let p95 = capped_quantile(&batch.reveal, 0.95).flatten();
        println!("   targets of issue 24 for batch mode at {n} links:");
        println!(
            "     reveal → Received p95 <= 60 s: {}",
            verdict(p95.is_some_and(|d| d <= Duration::from_secs(60)))
        );
        let within = |mode: &[Duration], idle: &[Duration]| {
            !mode.is_empty()
                && percentile(mode, 0.95) <= percentile(idle, 0.95) + Duration::from_secs(1)
        };
        println!(
            "     share p95 within 1 s of the idle operator's: {}",
            verdict(within(&batch.probes.share, &idle.probes.share) && batch.probes.failed == 0)
        );
        println!(
            "     burn p95 within 1 s of the idle operator's: {}",
            verdict(within(&batch.probes.burn, &idle.probes.burn) && batch.probes.failed == 0)
        );
        let rate = per_minute(batch.ots.values().sum(), batch.period);
        println!(
            "     OTS calls/min <= the configured rate (120): {} ({rate:.1})",
            verdict(rate <= 120.0)
        );
        println!(
            "     0 apiserver requests per idle link: {} ({} in the quiet spell)",
            verdict(batch.quiet.1.values().sum::<u64>() == 0),
            batch.quiet.1.values().sum::<u64>()
        );
    }
}
