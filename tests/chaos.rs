//! Faults lose nothing: shares made while the OTS server fails, hangs and rate-limits, while the
//! operator is SIGKILLed and restarted at random moments and the kube-apiserver restarts once, all
//! end with one live link that reveals their own Secret's value; deletion leaves no live secret
//! that a resource ever recorded.
//!
//! CI runs a reduced version (40 shares, 2 kills). The long version:
//! `OTS_CHAOS_SHARES=300 OTS_CHAOS_KILLS=5 cargo test --test chaos -- --nocapture`.
//!
//! On top, 5 % of share calls store their secret and then lose the answer (a 502, a hang past the
//! client timeout, garbage or a reset connection: one kind per run, printed). The operator runs on
//! an account dedicated to it (`--sweep-orphans`): a lost answer's secret is found and burned
//! before sharing again, and a kill between a share call and its record write leaves a secret
//! that the sweep burns once it is older than the grace period, as it does with the secrets of
//! lost answers that came too close together to tell apart. The test requires at most one
//! unrecorded live secret per kill or lost answer right after sharing, none once the sweep ran, and
//! none after deletion.

mod support;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use ots_operator::resource::OneTimeShare;
use ots_testserver::{
    Account, AfterStoreFault, AfterStoreKind, Config, Faults, RateLimitFault, TestServer,
};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};
use support::cluster::{control_plane, repo_root};
use support::operator::*;

const USER: &str = "chaos@example.com";
const TOKEN: &str = "tok-chaos-1";

/// How lost answers look in this run (one kind per run, so every kind gets its turn over runs).
fn lost_answer_kind() -> AfterStoreKind {
    const KINDS: [AfterStoreKind; 4] = [
        AfterStoreKind::Status502,
        AfterStoreKind::Hang,
        AfterStoreKind::Garbage,
        AfterStoreKind::Reset,
    ];
    KINDS[rand::rng().random_range(0..KINDS.len())]
}

/// The faults of the sharing phase: 30 % bare 5xx and 10 % hangs past the client timeout before
/// anything is stored, and 5 % of stored shares whose answer is lost.
fn sharing_faults(rate_limit: Option<RateLimitFault>, lost: AfterStoreKind) -> Faults {
    Faults {
        error_rate: 0.3,
        timeout_rate: 0.1,
        rate_limit,
        after_store: Some(AfterStoreFault {
            kind: lost,
            rate: Some(0.05),
            count: None,
        }),
        ..Faults::default()
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn secret_name(i: usize) -> String {
    format!("source-{i}")
}

fn share_name(i: usize) -> String {
    format!("share-{i}")
}

/// The operator of this test: the fast test settings, but a burn bound long enough that deletion
/// under 30 % server errors never gives up, and link checks at a pace the faulty server can serve.
///
/// With 10 % of calls hanging for the 3 s client timeout and 8 calls in flight, the server
/// handles about 27 calls/s; the test settings' 1-2 s checks of hundreds of links ask for far more.
/// The operator is then overloaded, and kube-runtime's scheduler picks held objects in hash order,
/// so some never get a turn (see the report of issue 7). This test is about faults, so it keeps
/// the load within capacity (`OTS_CHAOS_REFRESH_MIN`/`MAX`, default 20s/60s, change that).
fn start_operator(namespace: &str, server: &TestServer) -> Operator {
    let mut args = fast_args(namespace, &server.url());
    let mut set = |flag: &str, value: String| {
        if let Some(i) = args.iter().position(|a| a == flag) {
            args[i + 1] = value;
        }
    };
    set("--burn-timeout", "10m".into());
    set(
        "--refresh-min",
        std::env::var("OTS_CHAOS_REFRESH_MIN").unwrap_or_else(|_| "20s".into()),
    );
    set(
        "--refresh-max",
        std::env::var("OTS_CHAOS_REFRESH_MAX").unwrap_or_else(|_| "60s".into()),
    );
    args.extend(sweeping_account(USER, TOKEN, "5s", "20s").map(String::from));
    Operator::start_with(&args, &[("RUST_LOG", "info,ots_operator=debug")])
}

/// Creates an object, retrying while the apiserver is away; an existing object counts as created.
async fn create_tolerant<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot create an object: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Lists the shares of the namespace, retrying while the apiserver is away.
async fn list_shares(client: &Client, namespace: &str) -> Vec<OneTimeShare> {
    let deadline = Instant::now() + WAIT;
    loop {
        match shares(client, namespace).list(&ListParams::default()).await {
            Ok(list) => return list.items,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot list shares: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Polls until `done` holds for the whole list of shares; fails after `limit`.
async fn wait_all(
    client: &Client,
    namespace: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&[OneTimeShare]) -> bool,
) -> Vec<OneTimeShare> {
    let deadline = Instant::now() + limit;
    loop {
        let items = list_shares(client, namespace).await;
        if done(&items) {
            return items;
        }
        if Instant::now() >= deadline {
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for obj in &items {
                let reason = ready(obj).map(|(_, r, _)| r).unwrap_or_default();
                *phases
                    .entry(format!("{}/{reason}", phase(obj)))
                    .or_default() += 1;
            }
            panic!("timed out waiting for {what}; phase/reason counts: {phases:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A 429 burst with Retry-After on top of the error and timeout rates.
fn rate_limit_burst(lost: AfterStoreKind) -> Faults {
    sharing_faults(
        Some(RateLimitFault {
            retry_after_secs: 2,
            for_secs: 3,
        }),
        lost,
    )
}

/// Restarts the apiserver, saying when (seconds since `started`).
fn restart_apiserver_at(started: Instant) {
    eprintln!(
        "chaos: restarting the apiserver at {:.1}s",
        started.elapsed().as_secs_f64()
    );
    restart_apiserver();
}

fn restart_apiserver() {
    let script = repo_root().join("testing/controlplane/restart-apiserver");
    let out = Command::new(&script)
        .arg(&control_plane().dir)
        .args(["--down-secs", "2"])
        .output()
        .expect("run restart-apiserver");
    assert!(
        out.status.success(),
        "restart-apiserver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn link_of(obj: &OneTimeShare) -> Option<&str> {
    obj.status.as_ref().and_then(|s| s.link.as_deref())
}

fn name_of(obj: &OneTimeShare) -> String {
    obj.metadata.name.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_kills_and_an_apiserver_restart_lose_no_share_and_leave_no_recorded_secret() {
    let count = env_count("OTS_CHAOS_SHARES", 40);
    let kills = env_count("OTS_CHAOS_KILLS", 2);
    let limit = Duration::from_secs(300 + 2 * count as u64);
    let started = Instant::now();
    let (client, ns) = setup("chaos").await;
    let server = ots_server(Config {
        accounts: vec![Account::new(USER, TOKEN)],
        ..Config::default()
    });
    let lost = lost_answer_kind();
    eprintln!("chaos: lost answers this run: {lost:?}");
    server.set_faults(sharing_faults(None, lost));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let salt: u64 = rand::rng().random();
    let value = |i: usize| format!("chaos-value-{i}-{salt:016x}");
    futures::stream::iter(0..count)
        .for_each_concurrent(8, |i| {
            let secrets = secrets.clone();
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name(i)),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    "value".to_owned(),
                    ByteString(value(i).into_bytes()),
                )])),
                ..Secret::default()
            };
            async move { create_tolerant(&secrets, &secret).await }
        })
        .await;

    let mut operator = start_operator(&ns, &server);
    let mut dead_operators = Vec::new();

    // Shares arrive over a few seconds while the disruptions below happen.
    let creator = {
        let client = client.clone();
        let ns = ns.clone();
        tokio::spawn(async move {
            let api = shares(&client, &ns);
            for i in 0..count {
                let share: OneTimeShare = serde_json::from_value(serde_json::json!({
                    "apiVersion": "ots.dev/v1alpha1",
                    "kind": "OneTimeShare",
                    "metadata": { "name": share_name(i) },
                    "spec": { "secretRef": { "name": secret_name(i), "key": "value" } },
                }))
                .expect("a valid OneTimeShare");
                create_tolerant(&api, &share).await;
                let pause = rand::rng().random_range(0..60);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        })
    };

    let apiserver_restart_after = if kills == 0 {
        0
    } else {
        rand::rng().random_range(0..kills)
    };
    let mut bursts = 0;
    let mut apiserver_restarted = false;
    for k in 0..kills {
        let (wait_ms, burst) = {
            let mut rng = rand::rng();
            (rng.random_range(500..4000), rng.random_bool(0.5))
        };
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        if burst || (k + 1 == kills && bursts == 0) {
            server.set_faults(rate_limit_burst(lost));
            bursts += 1;
        }
        eprintln!(
            "chaos: SIGKILL operator #{k} at {:.1}s",
            started.elapsed().as_secs_f64()
        );
        operator.kill();
        dead_operators.push(operator);
        if k == apiserver_restart_after {
            restart_apiserver_at(started);
            apiserver_restarted = true;
        } else {
            let pause = rand::rng().random_range(0..1500);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        operator = start_operator(&ns, &server);
    }
    if !apiserver_restarted {
        // Without kills the apiserver still restarts once, under a running operator.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(500..3000))).await;
        server.set_faults(rate_limit_burst(lost));
        bursts += 1;
        restart_apiserver_at(started);
    }
    creator.await.expect("the share creator");

    // Every resource gets its link while the faults go on.
    let all = wait_all(&client, &ns, limit, "every share to be Shared", |items| {
        items.len() == count
            && items
                .iter()
                .all(|o| phase(o) == "Shared" && link_of(o).is_some())
    })
    .await;
    let shared_after = started.elapsed();
    server.set_faults(Faults::default());

    // Exactly one live link per resource; live secrets that no status records are orphans.
    let live: BTreeMap<String, String> = server
        .live_receipts()
        .into_iter()
        .map(|r| (r.secret_key, r.metadata_key))
        .collect();
    let mut recorded = BTreeSet::new();
    for obj in &all {
        let status = obj.status.as_ref().expect("status");
        let key = secret_key(link_of(obj).expect("link"));
        assert_eq!(
            live.get(&key).map(String::as_str),
            status.metadata_key.as_deref(),
            "{}: the link is not live under the recorded receipt",
            name_of(obj)
        );
        assert!(
            recorded.insert(key),
            "{}: two resources share one link",
            name_of(obj)
        );
    }
    let orphans: BTreeSet<String> = live
        .keys()
        .filter(|k| !recorded.contains(*k))
        .cloned()
        .collect();
    let stats = server.stats();
    let lost_answers = server
        .requests()
        .iter()
        .filter(|r| {
            r.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("after_store"))
        })
        .count();
    eprintln!(
        "chaos: {count} shares, {kills} operator kills, 1 apiserver restart, {bursts} 429 bursts, \
         {lost_answers} lost answers ({lost:?}); all Shared after {:.1}s; OTS requests {} \
         ({} faults injected, {} shares); unrecorded live secrets right after sharing: {}",
        shared_after.as_secs_f64(),
        stats.requests_total,
        stats.faults_injected,
        calls(&server, "share"),
        orphans.len()
    );
    // Each kill and each lost answer leaves at most one; several lost at once are ambiguous and
    // wait for the sweep.
    assert!(
        orphans.len() <= kills + lost_answers,
        "{} live secrets that no status records after {kills} kills and {lost_answers} lost answers",
        orphans.len()
    );
    // The sweep burns what kills left behind once it is older than the grace period.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live: BTreeSet<String> = server
            .live_receipts()
            .into_iter()
            .map(|r| r.secret_key)
            .collect();
        if live.is_subset(&recorded) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep left {} unrecorded live secrets",
            live.difference(&recorded).count()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let swept_after = started.elapsed();

    // Half the links are opened by their recipient: each reveals its own Secret's value. The other
    // half stay unread, so that deletion has something to burn.
    let index = |obj: &OneTimeShare| -> usize {
        name_of(obj)
            .strip_prefix("share-")
            .and_then(|i| i.parse().ok())
            .expect("a share name")
    };
    for obj in all.iter().filter(|o| index(o) % 2 == 0) {
        let revealed = reveal(&server, link_of(obj).expect("link"), None)
            .await
            .unwrap_or_else(|e| panic!("{}: the link does not reveal: {e}", name_of(obj)));
        assert_eq!(
            revealed,
            value(index(obj)),
            "{}: the link reveals another Secret's value",
            name_of(obj)
        );
    }

    // Deletion under server errors: every unread secret is burned, nothing recorded stays live.
    server.set_faults(Faults {
        error_rate: 0.3,
        ..Faults::default()
    });
    let api = shares(&client, &ns);
    for obj in &all {
        let deadline = Instant::now() + WAIT;
        while let Err(e) = api.delete(&name_of(obj), &DeleteParams::default()).await {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                break;
            }
            assert!(Instant::now() < deadline, "cannot delete: {e}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    wait_all(&client, &ns, limit, "every share to be deleted", |items| {
        items.is_empty()
    })
    .await;
    server.set_faults(Faults::default());
    let left: BTreeSet<String> = server
        .live_receipts()
        .into_iter()
        .map(|r| r.secret_key)
        .collect();
    let recorded_left: Vec<_> = left.intersection(&recorded).collect();
    assert!(
        recorded_left.is_empty(),
        "{} recorded secrets are still live after deletion",
        recorded_left.len()
    );
    assert!(
        left.is_empty(),
        "{} secrets live after deletion",
        left.len()
    );
    assert_eq!(server.stats().live_secrets, 0);
    eprintln!(
        "chaos: orphans swept by {:.1}s; done in {:.1}s; live secrets after deletion: {}",
        swept_after.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        left.len()
    );
    drop(dead_operators);
    operator.terminate();
}
