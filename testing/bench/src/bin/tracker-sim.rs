//! The batch tracker alone over the in-process OTS test server, with no control plane: how soon a
//! revealed link is seen among N live ones at a given rate of batch calls, and what a tracked
//! link costs in memory (issue 24's client-level simulation).
//!
//! `cargo run --release -p ots-bench --bin tracker-sim -- --links 100000`
//!
//! The operator does the same with each link that leaves an answer: one receipt read (not
//! counted here), and batch calls only get the capacity shares and burns leave, so `--rate` is
//! the share of the budget tracking gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use ots_operator::controller::batch_track::{BatchTracker, Checked, Group, Wake};
use ots_operator::ots::{ClientConfig, OtsClient, ShareRequest};
use ots_testserver::{Config, TestServer};
use rand::Rng;

/// Command line of `tracker-sim`.
#[derive(Parser, Debug)]
#[command(about = "The batch tracker alone: reveal-to-seen latency and memory per link")]
struct Args {
    /// Live links tracked.
    #[arg(long, default_value_t = 100_000)]
    links: usize,
    /// Batch calls per second the tracker may make.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// No link is asked about more often than this (the operator's --refresh-min), seconds.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Links revealed at random moments of the window.
    #[arg(long, default_value_t = 200)]
    reveals: usize,
    /// The window the reveals fall in, seconds.
    #[arg(long, default_value_t = 300)]
    window: u64,
    /// Longest wait for the last reveal to be seen, seconds.
    #[arg(long, default_value_t = 900)]
    cap: u64,
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(values: &mut [Duration], q: f64) -> Duration {
    values.sort();
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let server = TestServer::start_in_thread(Config::default())?;
    let client = OtsClient::new(ClientConfig::new(url::Url::parse(&server.url())?))?;

    println!(
        "== tracker alone: {} live links, {} batch calls/s, interval {} s",
        args.links, args.rate, args.interval
    );
    let started = Instant::now();
    let mut keys: Vec<String> = Vec::with_capacity(args.links);
    let mut made = futures::stream::iter(0..args.links)
        .map(|i| {
            let client = client.clone();
            async move { client.share(&ShareRequest::new(format!("value {i}"))).await }
        })
        .buffer_unordered(32);
    use futures::StreamExt;
    while let Some(receipt) = made.next().await {
        let key = receipt?
            .secret_key
            .ok_or("a receipt without a secret key")?;
        keys.push(key);
    }
    println!(
        "   {} secrets made in {:.1}s",
        keys.len(),
        started.elapsed().as_secs_f64()
    );

    let tracker = Arc::new(BatchTracker::default());
    let group = Group {
        url: server.url(),
        username: None,
    };
    let before = rss_kib();
    for (i, key) in keys.iter().enumerate() {
        tracker.watch(
            &format!("{i:08}-uid"),
            &format!("ns/share-{i}"),
            group.clone(),
            &client,
            key,
        );
    }
    let after = rss_kib();
    println!(
        "   tracker memory: {:.1} MiB for {} links, {:.0} bytes per link (RSS before/after registering)",
        (after.saturating_sub(before)) as f64 / 1024.0,
        keys.len(),
        (after.saturating_sub(before)) as f64 * 1024.0 / keys.len().max(1) as f64
    );

    // Reveals at random moments; the wake-ups say when each was seen.
    let revealed_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pace = Arc::new(tokio::sync::Mutex::new(tokio::time::interval(
        Duration::from_secs_f64(1.0 / args.rate),
    )));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let tracker = tracker.clone();
        let (revealed_at, seen, calls, pace) = (
            revealed_at.clone(),
            seen.clone(),
            calls.clone(),
            pace.clone(),
        );
        let interval = Duration::from_secs(args.interval);
        let reader = tracker.clone();
        tokio::spawn(async move {
            tracker
                .run(
                    || interval,
                    |_group, client: OtsClient, keys: Vec<String>| {
                        let (calls, pace) = (calls.clone(), pace.clone());
                        async move {
                            pace.lock().await.tick().await;
                            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                            match client.unread_among(&keys).await {
                                Ok(answers) => Checked::Answered(answers),
                                Err(e) => Checked::Failed(e),
                            }
                        }
                    },
                    move |wake: Wake| {
                        // The share's receipt read, which the operator makes next, is not
                        // simulated: it is counted done at once.
                        reader.read_done(&wake.uid);
                        if let Some(at) = revealed_at.lock().unwrap().remove(&*wake.uid) {
                            seen.lock().unwrap().push(at.elapsed());
                        }
                    },
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await;
        })
    };

    let tracking_started = Instant::now();
    let mut moments: Vec<(Duration, usize)> = {
        let mut rng = rand::rng();
        let which = rand::seq::index::sample(&mut rng, keys.len(), args.reveals.min(keys.len()));
        which
            .into_iter()
            .map(|i| {
                (
                    Duration::from_millis(rng.random_range(0..args.window * 1000)),
                    i,
                )
            })
            .collect()
    };
    moments.sort();
    let reveals = moments.len();
    for (at, i) in moments {
        tokio::time::sleep_until((tracking_started + at).into()).await;
        revealed_at
            .lock()
            .unwrap()
            .insert(format!("{i:08}-uid"), Instant::now());
        client.reveal(&keys[i], None).await?;
    }
    let cap = Instant::now() + Duration::from_secs(args.cap);
    while !revealed_at.lock().unwrap().is_empty() && Instant::now() < cap {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(());
    let _ = runner.await;
    let elapsed = tracking_started.elapsed();
    let unseen = revealed_at.lock().unwrap().len();
    let mut latencies = seen.lock().unwrap().clone();
    let n = latencies.len();
    let (p50, p95) = (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.95),
    );
    let max = latencies.last().copied().unwrap_or_default();
    let calls = calls.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "   {reveals} reveals over {} s: seen {n}, not seen within {} s after the last: {unseen}",
        args.window, args.cap
    );
    println!(
        "   reveal → seen: p50 {:.1} s, p95 {:.1} s, max {:.1} s",
        p50.as_secs_f64(),
        p95.as_secs_f64(),
        max.as_secs_f64()
    );
    println!(
        "   batch calls: {calls} in {:.0} s ({:.1}/min); one full pass over the links takes {:.0} s at this rate",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64() * 60.0,
        (keys.len() as f64 / 200.0).ceil() / args.rate
    );
    Ok(())
}
