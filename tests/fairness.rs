//! Fair use of the OTS budget (issue 20, F3), on the real control plane with the chart's own RBAC
//! and policies, the operator running as the chart's ServiceAccount at its default `--ots-rate`
//! (2/s): while one tenant floods the operator with 250 new shares and an `annotate --all`
//! reissue of 250 more, another tenant's revocations still burn within seconds, and its new shares
//! are still `Shared` within seconds. A test binary of its own: the release installs the
//! cluster-wide admission policies.

mod support;

use futures::StreamExt;
use kube::Client;
use kube::runtime::{WatchStreamExt, watcher};
use ots_operator::ots::SecretState;
use ots_operator::resource::OneTimeShare;
use ots_testserver::{Config, TestServer};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cluster::{repo_root, service_account_kubeconfig, test_namespace, tool_command};
use support::operator::*;

/// Samples of each kind per round (a p95 of 20 is the second-worst).
const SAMPLES: usize = 20;
/// The flooding tenant's shares: 250 shared before the flood (then reissued) and 250 new ones.
const FLOOD: usize = 250;
/// What the requirement allows under the flood, at the 95th percentile.
const BURN_P95: Duration = Duration::from_secs(5);
const SHARE_P95: Duration = Duration::from_secs(10);
/// How long a sample may take before it counts as not done at all (the table shows "> 60 s").
const SAMPLE_DEADLINE: Duration = Duration::from_secs(60);

/// Installs the chart as a cluster would run it, with Secret writes on (release `ots-operator` in
/// namespace `ots-operator`); the operator itself runs outside, with a token of its ServiceAccount.
fn helm_install() {
    let out = tool_command("helm")
        .args(["install", "ots-operator"])
        .arg(repo_root().join("deploy/helm/ots-operator"))
        .args(["--namespace", "ots-operator", "--create-namespace"])
        .args(["--set", "ots.acceptPublicService=true"])
        .args(["--set", "secretWrites.enabled=true"])
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's flags for the operator (records in the release namespace, creators checked by
/// the chart's admission policy), all namespaces, the test server as its server, plus `extra`.
fn operator_args(server: &TestServer, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ots-url",
        &server.url(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--state-namespace",
        "ots-operator",
        "--admission-guard",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Polls `/readyz` until the operator's watch has listed everything.
async fn wait_ready(operator: &Operator) {
    let url = format!("http://{}/readyz", operator.metrics_addr());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(answer) = reqwest::get(&url).await
            && answer.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the operator never became ready; log:\n{}",
            operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates the named shares of Secret `secret` (key `password`), many at once.
async fn create_shares(client: &Client, ns: &str, secret: &str, names: Vec<String>) {
    futures::stream::iter(names)
        .for_each_concurrent(20, |name| async move {
            create_share(
                client,
                ns,
                &name,
                json!({"secretRef": {"name": secret, "key": "password"}, "ttl": "1h"}),
            )
            .await;
        })
        .await;
}

/// Waits until `n` shares of the namespace are Shared; bounded.
async fn wait_all_shared(client: &Client, ns: &str, n: usize) -> Vec<OneTimeShare> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let all = shares(client, ns)
            .list(&Default::default())
            .await
            .expect("list the shares")
            .items;
        let shared = all.iter().filter(|o| phase(o) == "Shared").count();
        if shared >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "only {shared} of {n} shares in {ns} were Shared in time"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// When each share of a namespace was first seen Shared, and when each was gone, from a watch.
#[derive(Clone, Default)]
struct Seen {
    shared: Arc<Mutex<HashMap<String, Instant>>>,
    gone: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Seen {
    /// Watches the namespace's shares from now on (returns once the watch has listed them).
    async fn watch(client: &Client, ns: &str) -> Seen {
        let seen = Seen::default();
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let stream = watcher(shares(client, ns), watcher::Config::default()).default_backoff();
        let recorder = seen.clone();
        tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj))
                        if phase(&obj) == "Shared" =>
                    {
                        let name = obj.metadata.name.unwrap_or_default();
                        recorder.shared.lock().unwrap().entry(name).or_insert(now);
                    }
                    Ok(watcher::Event::Delete(obj)) => {
                        let name = obj.metadata.name.unwrap_or_default();
                        recorder.gone.lock().unwrap().entry(name).or_insert(now);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(WAIT, listed_rx)
            .await
            .expect("the watch lists the namespace")
            .expect("the watch task runs");
        seen
    }
}

/// What one round measured: per sample, how long it took (`None`: not done within
/// [`SAMPLE_DEADLINE`]).
struct Round {
    burns: Vec<Option<Duration>>,
    shares: Vec<Option<Duration>>,
}

/// One round in the calm tenant's namespace: every second one operation, alternating a new
/// share (`new-ROUND-I`, create → Shared) and the deletion of a live one (`live-ROUND-I`,
/// delete → gone, which the finalizer allows only after the burn).
async fn measure(client: &Client, ns: &str, seen: &Seen, round: &str) -> Round {
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    for i in 0..SAMPLES {
        let name = format!("new-{round}-{i}");
        let at = Instant::now();
        create_share(
            client,
            ns,
            &name,
            json!({"secretRef": {"name": "calm", "key": "password"}, "ttl": "1h"}),
        )
        .await;
        created.push((name, at));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let name = format!("live-{round}-{i}");
        let at = Instant::now();
        delete_share(client, ns, &name).await;
        deleted.push((name, at));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = |done: &Arc<Mutex<HashMap<String, Instant>>>, started: &[(String, Instant)]| {
        let done = done.lock().unwrap();
        started
            .iter()
            .map(|(name, at)| done.get(name).map(|t| t.duration_since(*at)))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + SAMPLE_DEADLINE;
    loop {
        let burns = took(&seen.gone, &deleted);
        let new = took(&seen.shared, &created);
        let all_done = burns.iter().chain(&new).all(Option::is_some);
        if all_done || Instant::now() >= deadline {
            let late = |v: Vec<Option<Duration>>| {
                v.into_iter()
                    .map(|d| d.filter(|d| *d <= SAMPLE_DEADLINE))
                    .collect()
            };
            return Round {
                burns: late(burns),
                shares: late(new),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The nearest-rank percentile `p` (0–100); a sample not done counts as longer than any.
fn percentile(samples: &[Option<Duration>], p: usize) -> Option<Duration> {
    let mut sorted: Vec<_> = samples.iter().map(|d| d.unwrap_or(Duration::MAX)).collect();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1]).filter(|d| *d != Duration::MAX)
}

fn shown(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
        None => format!("> {} s", SAMPLE_DEADLINE.as_secs()),
    }
}

fn row(what: &str, samples: &[Option<Duration>]) -> String {
    format!(
        "{what:<42} {:>3} {:>9} {:>9} {:>9}",
        samples.len(),
        shown(percentile(samples, 50)),
        shown(percentile(samples, 95)),
        shown(percentile(samples, 100)),
    )
}

#[tokio::test]
async fn a_flooding_tenant_delays_neither_another_tenants_revocations_nor_its_new_shares() {
    let admin = support::cluster::client().await;
    helm_install();
    let flood = test_namespace(&admin, "flood").await;
    let calm = test_namespace(&admin, "calm").await;
    let server = ots_server(Config::default());
    let kubeconfig = service_account_kubeconfig(&admin, "ots-operator", "ots-operator").await;
    let kubeconfig = kubeconfig.to_string_lossy().to_string();
    let env = [("KUBECONFIG", kubeconfig.as_str()), ("RUST_LOG", "info")];

    // The stage, set quickly by an operator with a generous rate: the flooding tenant's 250 live
    // links (to be reissued), and the calm tenant's live links that each round deletes.
    let mut setup = Operator::start_with(
        &operator_args(&server, &["--ots-rate", "200", "--ots-burst", "200"]),
        &env,
    );
    create_secret(&admin, &flood, "flood", &[("password", b"flood-value")]).await;
    create_secret(&admin, &calm, "calm", &[("password", b"calm-value")]).await;
    let live: Vec<String> = ["quiet", "flood"]
        .iter()
        .flat_map(|round| (0..SAMPLES).map(move |i| format!("live-{round}-{i}")))
        .collect();
    create_shares(&admin, &calm, "calm", live.clone()).await;
    create_shares(
        &admin,
        &flood,
        "flood",
        (0..FLOOD).map(|i| format!("old-{i}")).collect(),
    )
    .await;
    let calm_links: HashMap<String, String> = wait_all_shared(&admin, &calm, live.len())
        .await
        .iter()
        .map(|o| (o.metadata.name.clone().unwrap_or_default(), metadata_key(o)))
        .collect();
    wait_all_shared(&admin, &flood, FLOOD).await;
    setup.terminate();

    // The operator under test: the chart's account and flags, every limit at its default.
    let operator = Operator::start_with(&operator_args(&server, &[]), &env);
    wait_ready(&operator).await;
    // Its start-up link checks take only spare capacity; let them pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = Seen::watch(&admin, &calm).await;

    let quiet = measure(&admin, &calm, &seen, "quiet").await;

    // The flood: 250 new shares, then every share of the namespace reissued.
    let calls_before = calls(&server, "share");
    create_shares(
        &admin,
        &flood,
        "flood",
        (0..FLOOD).map(|i| format!("new-{i}")).collect(),
    )
    .await;
    let annotate = tool_command("kubectl")
        .args([
            "annotate",
            "ots",
            "--all",
            "-n",
            &flood,
            "ots.dev/reshare=r1",
        ])
        .output()
        .expect("run kubectl annotate");
    assert!(
        annotate.status.success(),
        "{}",
        String::from_utf8_lossy(&annotate.stderr)
    );
    let flooded = measure(&admin, &calm, &seen, "flood").await;

    // The flood was still queued when the last sample ended (2 OTS calls a second cannot have
    // made 250 new links and reissued 250 more by then).
    let handled = shares(&admin, &flood)
        .list(&Default::default())
        .await
        .expect("list the flooding tenant's shares")
        .items
        .iter()
        .filter(|o| {
            phase(o) == "Shared"
                && o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("r1")
        })
        .count();
    let flood_shares = calls(&server, "share") - calls_before;

    let table = [
        format!(
            "{:<42} {:>3} {:>9} {:>9} {:>9}",
            "calm tenant, at --ots-rate 2", "n", "p50", "p95", "max"
        ),
        row("revocation: delete -> burned and gone, quiet", &quiet.burns),
        row("revocation: delete -> burned and gone, flood", &flooded.burns),
        row("new share: create -> Shared, quiet", &quiet.shares),
        row("new share: create -> Shared, flood", &flooded.shares),
        format!(
            "flood: {handled} of {} shares reissued or shared for r1 when the last sample ended ({flood_shares} share calls since it began)",
            2 * FLOOD
        ),
    ]
    .join("\n");
    println!("{table}");

    assert!(
        handled < 2 * FLOOD,
        "the flood had drained before the samples ended, so they prove nothing:\n{table}"
    );
    let burn_p95 = percentile(&flooded.burns, 95);
    let share_p95 = percentile(&flooded.shares, 95);
    assert!(
        burn_p95.is_some_and(|d| d <= BURN_P95) && share_p95.is_some_and(|d| d <= SHARE_P95),
        "under the flood, revocations must burn within {BURN_P95:?} and new shares be Shared within {SHARE_P95:?} (p95):\n{table}"
    );
    // Gone means burned: the server shows each deleted live link burned.
    let client = ots_client(&server);
    for name in &live {
        let key = &calm_links[name];
        let receipt = client.receipt(key).await.expect("the receipt");
        assert_eq!(receipt.state, SecretState::Burned, "{name}");
    }
    drop(operator);
}
