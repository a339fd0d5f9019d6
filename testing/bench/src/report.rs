//! Percentiles, per-share figures and the closing summary against the targets of design.md §5.

use crate::audit::{Counts, sum};
use crate::operator::Rss;
use std::time::Duration;

/// What the run measured, for the summary.
#[derive(Default)]
pub struct Figures {
    /// The bare loop's time.
    pub floor: Option<Duration>,
    /// The loop's time with the contract's writes (finalizer patch, record Secret, Event).
    pub floor_contract: Option<Duration>,
    /// The operator's time on a backlog.
    pub backlog: Option<Duration>,
    /// The operator's time with shares created while it runs.
    pub live: Option<Duration>,
    /// p50 and p99 of create-to-Shared.
    pub latency: Option<(Duration, Duration)>,
    /// The script's extrapolated time.
    pub script: Option<Duration>,
    /// Apiserver requests while sharing a backlog, and how many shares.
    pub sharing_api: Option<(Counts, usize)>,
    /// Apiserver and OTS requests while tracking, links tracked, window.
    pub tracking: Option<(Counts, Counts, usize, Duration)>,
    /// Apiserver requests from reveal to Received, and how many shares.
    pub received_api: Option<(Counts, usize)>,
    /// RSS idle, with shares, with unrelated Secrets; how many shares and unrelated Secrets.
    pub memory: Option<(Rss, Rss, Rss, usize, usize)>,
    /// The binaries are a dev build: times and memory are judged against no target.
    pub unoptimized: bool,
}

/// `count / n`.
pub fn per(count: u64, n: usize) -> f64 {
    count as f64 / n.max(1) as f64
}

/// KiB to MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `q` quantile (nearest rank) of some durations.
pub fn percentile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One throughput line.
pub fn line(what: &str, n: usize, elapsed: Duration) {
    println!(
        "   {what}: {:.2}s ({:.1} shares/s)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

fn is_status_write(key: &str) -> bool {
    (key.starts_with("patch ") || key.starts_with("update "))
        && key.ends_with("onetimeshares/status")
}

/// Per-share request counts of one window.
pub fn economy(what: &str, n: usize, api: &Counts, ots: &Counts) {
    println!("   {what}: requests per share (n = {n})");
    let total: u64 = api.values().sum();
    println!("     apiserver total {:.2}", per(total, n));
    for (key, count) in api {
        println!("       {key:<40} {:.3}", per(*count, n));
    }
    let ots_total: u64 = ots.values().sum();
    println!("     OTS total {:.2}", per(ots_total, n));
    for (key, count) in ots {
        println!("       {key:<40} {:.3}", per(*count, n));
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Figures {
    /// The verdict on a time or memory figure: none for an unoptimized build.
    fn optimized_verdict(&self, ok: bool) -> &'static str {
        if self.unoptimized {
            "not judged (dev build)"
        } else {
            verdict(ok)
        }
    }

    /// Prints the figures against the targets of design.md §5.
    pub fn summary(&self) {
        println!("== summary (targets of design.md §5)");
        // The bar is judged against the loop that makes the operator's calls (5 apiserver
        // requests per share: finalizer, Secret read, record Secret, status, Event), so it
        // measures the controller and nothing else; the bare loop's ratio shows what the
        // contract's writes cost.
        if let (Some(floor), Some(backlog)) = (self.floor_contract, self.backlog) {
            let ratio = backlog.as_secs_f64() / floor.as_secs_f64();
            println!(
                "   operator/floor (backlog)        {ratio:.2}   target <= 1.25: {}   (floor with the contract's writes: the same 5 apiserver requests per share)",
                self.optimized_verdict(ratio <= 1.25)
            );
        }
        if let (Some(floor), Some(backlog)) = (self.floor, self.backlog) {
            let ratio = backlog.as_secs_f64() / floor.as_secs_f64();
            println!(
                "   operator/bare floor             {ratio:.2}   (the bare loop makes 2 of the 5 apiserver requests: no finalizer, record or Event)"
            );
        }
        if let (Some(floor), Some(live)) = (self.floor, self.live) {
            let ratio = live.as_secs_f64() / floor.as_secs_f64();
            println!(
                "   operator/floor (live creates)   {ratio:.2}   (includes creating the resources)"
            );
        }
        if let (Some(script), Some(backlog)) = (self.script, self.backlog) {
            let ratio = script.as_secs_f64() / backlog.as_secs_f64();
            println!(
                "   script/operator (backlog)       {ratio:.1}   target >= 20: {}",
                self.optimized_verdict(ratio >= 20.0)
            );
        }
        if let Some((p50, p99)) = self.latency {
            println!(
                "   create-to-Shared latency        p50 {:.0} ms, p99 {:.0} ms",
                p50.as_secs_f64() * 1000.0,
                p99.as_secs_f64() * 1000.0
            );
        }
        if let Some((api, n)) = &self.sharing_api {
            let reads = per(sum(api, |k| k == "get secrets"), *n);
            let writes = per(sum(api, is_status_write), *n);
            let received = self
                .received_api
                .as_ref()
                .map(|(api, n)| per(sum(api, is_status_write), *n))
                .unwrap_or_default();
            println!(
                "   Secret reads per share          {reads:.2}   target <= 1: {}",
                verdict(reads <= 1.0)
            );
            println!(
                "   status writes per share         {writes:.2} to share + {received:.2} on receipt   target <= 2: {}",
                verdict(writes + received <= 2.0)
            );
            println!(
                "   other writes per share          {:.2} finalizer patches, {:.2} Event writes",
                per(sum(api, |k| k == "patch onetimeshares"), *n),
                per(sum(api, |k| k.ends_with(" events")), *n)
            );
        }
        if let Some((api, ots, n, window)) = &self.tracking {
            let minutes = window.as_secs_f64() / 60.0;
            println!(
                "   while tracking, per link/min    {:.3} apiserver requests, {:.3} OTS receipt checks",
                per(api.values().sum(), *n) / minutes,
                per(sum(ots, |k| k == "receipt"), *n) / minutes
            );
        }
        if let Some((idle, shares, unrelated, m, u)) = &self.memory {
            let idle_mib = kib_to_mib(idle.rss_kib);
            let shares_mib = kib_to_mib(shares.rss_kib);
            let unrelated_mib = kib_to_mib(unrelated.rss_kib);
            let added = unrelated_mib - shares_mib;
            println!(
                "   idle RSS                        {idle_mib:.1} MiB   target <= 20: {}",
                self.optimized_verdict(idle_mib <= 20.0)
            );
            // design.md §5: at most 40 MiB with 5,000 shares, at most 4 KiB per share over idle.
            let per_share_kib =
                (shares.rss_kib.saturating_sub(idle.rss_kib)) as f64 / (*m).max(1) as f64;
            println!(
                "   RSS with {m} shares + {u} Secrets {unrelated_mib:.1} MiB (peak {:.1})   target <= 40: {}",
                kib_to_mib(unrelated.hwm_kib),
                self.optimized_verdict(unrelated_mib <= 40.0 && shares_mib <= 40.0)
            );
            println!(
                "   per share over idle             {per_share_kib:.1} KiB   target <= 4: {}",
                self.optimized_verdict(per_share_kib <= 4.0)
            );
            println!(
                "   unrelated Secrets add           {added:+.1} MiB   target < 5: {}",
                self.optimized_verdict(added < 5.0)
            );
        }
    }
}
