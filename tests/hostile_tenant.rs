//! Issue 20 ("Tenant safety, second round"): the holes a hostile tenant found in generate, link
//! Secrets, reissue, the live-link limit and the watch cache, each tried again as that tenant
//! would, on the real control plane with the chart's own RBAC and admission policies (rendered
//! with `secretWrites.enabled=true`), the operator running with a token of the chart's
//! ServiceAccount, and kube-controller-manager collecting garbage. The rule each test holds the
//! operator to: nobody gets more through the operator than they could do themselves. (Fairness of
//! the OTS budget, F3, has its own binary: `tests/fairness.rs`.)

mod support;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use ots_operator::resource::OneTimeShare;
use ots_testserver::Config;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::chart::{self, rule, tenant};
use support::cluster::{self, with_controller_manager};
use support::operator::*;

/// The control plane with kube-controller-manager and the chart installed as the tests need it,
/// and a namespace of its own for one test, holding Secret `db` (`password` = `value`).
async fn guarded_namespace(prefix: &str, value: &[u8]) -> (Client, String) {
    with_controller_manager();
    chart::install(&["secretWrites.enabled=true"]);
    let admin = cluster::client().await;
    let ns = cluster::test_namespace(&admin, prefix).await;
    create_secret(&admin, &ns, "db", &[("password", value)]).await;
    (admin, ns)
}

/// Managing shares, as a namespace's developers may: everything on OneTimeShares.
fn manages_shares() -> PolicyRule {
    rule(
        "ots.dev",
        &["onetimeshares"],
        &[
            "create", "get", "list", "watch", "patch", "update", "delete",
        ],
        &[],
    )
}

/// `get` on the named Secrets only.
fn reads(names: &[&str]) -> PolicyRule {
    rule("", &["secrets"], &["get"], names)
}

/// `create` on Secrets of the namespace.
fn creates_secrets() -> PolicyRule {
    rule("", &["secrets"], &["create"], &[])
}

/// Creates a share as `who`; the apiserver's answer.
async fn try_share(who: &Client, ns: &str, name: &str, spec: Value) -> Result<(), kube::Error> {
    let share: OneTimeShare = serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("a valid OneTimeShare");
    shares(who, ns)
        .create(&PostParams::default(), &share)
        .await
        .map(|_| ())
}

/// Merge-patches a share as `who`; the apiserver's answer.
async fn try_patch(who: &Client, ns: &str, name: &str, patch: Value) -> Result<(), kube::Error> {
    shares(who, ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
}

/// Asserts that a write was refused by the admission policy with a message holding every one of
/// `expected`; returns the message.
fn assert_refused(answer: Result<(), kube::Error>, what: &str, expected: &[&str]) -> String {
    let message = match answer {
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => status.message,
        other => panic!("{what}: expected a refusal by the admission policy, got {other:?}"),
    };
    for part in expected {
        assert!(
            message.contains(part),
            "{what}: {part:?} not in {message:?}"
        );
    }
    message
}

fn secrets(client: &Client, ns: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), ns)
}

/// The keys a Secret holds (as the admin sees it), or `None` when it does not exist.
async fn keys_of(admin: &Client, ns: &str, name: &str) -> Option<Vec<String>> {
    let secret = secrets(admin, ns)
        .get_opt(name)
        .await
        .expect("get the Secret")?;
    Some(secret.data.unwrap_or_default().into_keys().collect())
}

fn ready_message(obj: &OneTimeShare) -> String {
    ready(obj)
        .map(|(_, _, message)| message)
        .unwrap_or_default()
}

/// F1: a tenant who may neither create nor get Secrets named `app-tls` as a share's link
/// Secret; the operator created it (labelled as its own, owned by that share), the namespace
/// owner's later `kubectl apply` of `app-tls` wrote into it, and the garbage collector deleted the
/// owner's keys with the planter's share. Now the name needs the right to create that Secret.
#[tokio::test]
async fn a_link_secret_may_only_be_named_by_someone_who_could_create_it() {
    let (admin, ns) = guarded_namespace("f1-plant", b"shared-on-purpose").await;
    let planter = tenant(
        &admin,
        &ns,
        "planter",
        vec![manages_shares(), reads(&["db"])],
    )
    .await;
    chart::wait_policy_active(&planter, &ns).await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(&[&ns], &server.url(), &[]).await;

    let spec = json!({"secretRef": {"name": "db", "key": "password"}, "linkSecretRef": {"name": "app-tls"}});
    let user = format!("system:serviceaccount:{ns}:planter");
    assert_refused(
        try_share(&planter, &ns, "plant", spec.clone()).await,
        "the planter names app-tls as its link Secret",
        &[
            &format!("spec.linkSecretRef: {user} may not create Secrets in namespace {ns}"),
            "Secret \"app-tls\"",
            "missing permission: create on secrets",
        ],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        keys_of(&admin, &ns, "app-tls").await,
        None,
        "no Secret was planted"
    );
    assert_eq!(server.stats().live_secrets, 0, "nothing was shared");

    // Whoever may create Secrets may name one: the operator creates it for that share.
    let owner = tenant(
        &admin,
        &ns,
        "owner",
        vec![manages_shares(), reads(&["db"]), creates_secrets()],
    )
    .await;
    try_share(&owner, &ns, "handoff", spec)
        .await
        .expect("the owner may name a link Secret it could create");
    let shared = wait_for(&admin, &ns, "handoff", "phase Shared", |o| {
        phase(o) == "Shared"
    })
    .await;
    let link = secrets(&admin, &ns)
        .get("app-tls")
        .await
        .expect("the link Secret");
    let link = String::from_utf8(link.data.unwrap()["link"].0.clone()).unwrap();
    assert_eq!(
        reveal(&server, &link, None).await.unwrap(),
        "shared-on-purpose"
    );
    assert!(
        shared.status.unwrap().link.is_none(),
        "the link stays out of status"
    );
}

/// F4 (and F1's second harm): a tenant with `get` and `create` on Secrets but no `patch` on
/// `app-token` named it with `spec.generate` and a new key (`LD_PRELOAD`); the operator added
/// the key to the Secret it had generated for someone else's share. A link Secret made for one
/// share likewise received another user's generated password. Now a key is added only to a Secret
/// the operator created for that very share.
#[tokio::test]
async fn generate_never_adds_a_key_to_a_secret_made_for_another_share() {
    let (admin, ns) = guarded_namespace("f4-addkey", b"for-the-link").await;
    let alice = tenant(
        &admin,
        &ns,
        "alice",
        vec![
            manages_shares(),
            reads(&["db", "app-token", "app-creds"]),
            creates_secrets(),
        ],
    )
    .await;
    let mallory = tenant(
        &admin,
        &ns,
        "mallory",
        vec![
            manages_shares(),
            reads(&["app-token", "app-creds"]),
            creates_secrets(),
        ],
    )
    .await;
    chart::wait_policy_active(&mallory, &ns).await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(&[&ns], &server.url(), &[]).await;

    // Alice generates app-token/token, and keeps a link in app-creds.
    try_share(
        &alice,
        &ns,
        "token",
        json!({"secretRef": {"name": "app-token", "key": "token"}, "generate": {}}),
    )
    .await
    .expect("alice generates app-token");
    try_share(
        &alice,
        &ns,
        "creds",
        json!({"secretRef": {"name": "db", "key": "password"}, "linkSecretRef": {"name": "app-creds"}}),
    )
    .await
    .expect("alice keeps a link in app-creds");
    wait_shared(&admin, &ns, "token").await;
    wait_shared(&admin, &ns, "creds").await;
    let token_before = secrets(&admin, &ns).get("app-token").await.unwrap().data;
    let creds_before = secrets(&admin, &ns).get("app-creds").await.unwrap().data;

    // Mallory may create Secrets, so admission lets her shares in; the operator refuses them.
    for (name, secret, key) in [
        ("preload", "app-token", "LD_PRELOAD"),
        ("password", "app-creds", "password"),
    ] {
        try_share(
            &mallory,
            &ns,
            name,
            json!({"secretRef": {"name": secret, "key": key}, "generate": {}}),
        )
        .await
        .expect("mallory may create Secrets, so the share is admitted");
        let refused = wait_for(&admin, &ns, name, "reason SecretNotOwned", |o| {
            ready_reason_is(o, "SecretNotOwned")
        })
        .await;
        assert_eq!(phase(&refused), "Failed");
        let message = ready_message(&refused);
        assert!(
            message.contains("made by the ots-operator for another OneTimeShare")
                && message.contains(&format!("{key:?}")),
            "{message}"
        );
        wait_event(&admin, &ns, name, "Warning", "SecretNotOwned").await;
    }
    assert_eq!(
        secrets(&admin, &ns).get("app-token").await.unwrap().data,
        token_before,
        "app-token is exactly as alice's share made it"
    );
    assert_eq!(
        secrets(&admin, &ns).get("app-creds").await.unwrap().data,
        creds_before,
        "the link Secret holds only the link"
    );
    assert_eq!(server.stats().live_secrets, 2, "only alice's two links");
}

/// F2: a user with `patch` on OneTimeShares but no `get` on Secret `db` set `ots.dev/reshare` on
/// someone else's received share, read the new link from status and revealed `db`. Now every
/// write that makes new links (a new reshare value, onExpiry, maxShares, onSecretChange) is
/// guarded like a create; edits that make none stay open.
#[tokio::test]
async fn reissuing_a_share_needs_get_on_its_secrets_like_creating_one() {
    let (admin, ns) = guarded_namespace("f2-reissue", b"not-for-the-patcher").await;
    let patcher = tenant(&admin, &ns, "patcher", vec![manages_shares()]).await;
    let reader = tenant(
        &admin,
        &ns,
        "reader",
        vec![manages_shares(), reads(&["db"])],
    )
    .await;
    chart::wait_policy_active(&patcher, &ns).await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(&[&ns], &server.url(), &[]).await;
    create_share(
        &admin,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&admin, &ns, "handoff").await;
    open_link(&server, &shared).await;
    wait_for(&admin, &ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;

    let user = format!("system:serviceaccount:{ns}:patcher");
    for patch in [
        json!({"metadata": {"annotations": {"ots.dev/reshare": "r1"}}}),
        json!({"spec": {"onExpiry": "Reshare"}}),
        json!({"spec": {"onSecretChange": "Reshare"}}),
    ] {
        assert_refused(
            try_patch(&patcher, &ns, "handoff", patch.clone()).await,
            &format!("the patcher patches {patch}"),
            &[
                &format!("spec.secretRef: {user} may not get Secret \"db\" in namespace {ns}"),
                "missing permission: get on secrets",
                "reissuing a OneTimeShare",
            ],
        );
    }
    // Edits that make no link stay open to whoever may edit the share.
    for patch in [
        json!({"metadata": {"labels": {"team": "a"}}}),
        json!({"spec": {"deletionPolicy": "Keep"}}),
    ] {
        try_patch(&patcher, &ns, "handoff", patch.clone())
            .await
            .unwrap_or_else(|e| panic!("the patcher may still patch {patch}: {e}"));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = shares(&admin, &ns).get("handoff").await.unwrap();
    assert_eq!(phase(&after), "Received", "nothing was reissued");
    assert_eq!(calls(&server, "share"), 1, "one link only");
    assert_eq!(server.stats().live_secrets, 0);

    // Someone who may read db may reissue it.
    try_patch(
        &reader,
        &ns,
        "handoff",
        json!({"metadata": {"annotations": {"ots.dev/reshare": "r1"}}}),
    )
    .await
    .expect("the reader may reissue");
    let reissued = wait_for(&admin, &ns, "handoff", "reissued", |o| {
        phase(o) == "Shared"
            && o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("r1")
    })
    .await;
    assert_eq!(open_link(&server, &reissued).await, "not-for-the-patcher");
}

/// F5: `--max-live-shares-per-secret 2` did not count reissues: two received shares reissued next
/// to two live ones made four live links of one Secret. Now every live link counts.
#[tokio::test]
async fn the_live_link_limit_counts_reissued_links_too() {
    let (admin, ns) = guarded_namespace("f5-limit", b"at-most-two").await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(
        &[&ns],
        &server.url(),
        &["--max-live-shares-per-secret", "2"],
    )
    .await;
    let spec = json!({"secretRef": {"name": "db", "key": "password"}});
    for name in ["a", "b"] {
        create_share(&admin, &ns, name, spec.clone()).await;
        let shared = wait_shared(&admin, &ns, name).await;
        open_link(&server, &shared).await;
        wait_for(&admin, &ns, name, "phase Received", |o| {
            phase(o) == "Received"
        })
        .await;
    }
    for name in ["c", "d"] {
        create_share(&admin, &ns, name, spec.clone()).await;
        wait_shared(&admin, &ns, name).await;
    }
    assert_eq!(live_keys(&server).len(), 2);

    for name in ["a", "b"] {
        annotate(&admin, &ns, name, "again").await;
    }
    for name in ["a", "b"] {
        let note = wait_event(&admin, &ns, name, "Warning", "TooManyShares").await;
        assert!(note.contains("already has 2 live link(s)"), "{note}");
        let waiting = wait_for(&admin, &ns, name, "reason TooManyShares", |o| {
            ready_reason_is(o, "TooManyShares")
        })
        .await;
        assert_eq!(
            phase(&waiting),
            "Received",
            "the old link's story stays as it was"
        );
    }
    assert_eq!(
        live_keys(&server).len(),
        2,
        "never more than two live links of db"
    );
    assert_eq!(
        calls(&server, "share"),
        4,
        "no link was made for the reissues"
    );

    // A slot frees: one reissue goes ahead, the other keeps waiting.
    let c = shares(&admin, &ns).get("c").await.unwrap();
    open_link(&server, &c).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let mut reissued = 0;
        for name in ["a", "b"] {
            if phase(&shares(&admin, &ns).get(name).await.unwrap()) == "Shared" {
                reissued += 1;
            }
        }
        assert!(
            live_keys(&server).len() <= 2,
            "never more than two live links of db"
        );
        if reissued == 1 {
            break;
        }
        assert!(reissued < 2, "both reissues went ahead past the limit");
        assert!(
            Instant::now() < deadline,
            "no reissue went ahead once a slot was free"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        live_keys(&server).len(),
        2,
        "never more than two live links of db"
    );
}

/// F6, the value: a 200,000-character `ots.dev/reshare` value was copied into status and into
/// the operator's record. Now admission refuses values over 63 characters (the operator refuses
/// them too, and never copies one: see the reconcile test
/// `a_reshare_value_too_long_to_act_on_is_refused_and_never_copied`).
#[tokio::test]
async fn a_reshare_value_longer_than_63_characters_is_refused_at_admission() {
    let (admin, ns) = guarded_namespace("f6-token", b"bounded").await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(&[&ns], &server.url(), &[]).await;
    create_share(
        &admin,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    wait_shared(&admin, &ns, "handoff").await;
    let huge = "r".repeat(200_000);
    assert_refused(
        try_patch(
            &admin,
            &ns,
            "handoff",
            json!({"metadata": {"annotations": {"ots.dev/reshare": huge}}}),
        )
        .await,
        "a 200,000-character reshare value",
        &[
            "metadata.annotations[ots.dev/reshare]: at most 63 characters",
            "this value has 200000",
        ],
    );
    let longest = "t".repeat(63);
    annotate(&admin, &ns, "handoff", &longest).await;
    let reissued = wait_for(&admin, &ns, "handoff", "reissued", |o| {
        o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some(longest.as_str())
    })
    .await;
    assert_eq!(phase(&reissued), "Shared");
    assert_eq!(calls(&server, "share"), 2);
}

/// Burning a share without deleting it (`ots.dev/burn`, Argo CD's `burn` action) makes no link,
/// so it needs no Secret rights (whoever may update the share could delete it, which burns it
/// too): the F2 rule does not apply to it. Its value is bounded like the reshare value's.
#[tokio::test]
async fn a_burn_needs_no_secret_rights_and_its_value_is_bounded_at_admission() {
    let (admin, ns) = guarded_namespace("burn-rights", b"burn-without-reading").await;
    let patcher = tenant(&admin, &ns, "burner", vec![manages_shares()]).await;
    chart::wait_policy_active(&patcher, &ns).await;
    let server = ots_server(Config::default());
    let _operator = chart::start_operator(&[&ns], &server.url(), &[]).await;
    create_share(
        &admin,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&admin, &ns, "handoff").await;
    let huge = "b".repeat(64);
    assert_refused(
        try_patch(
            &patcher,
            &ns,
            "handoff",
            json!({"metadata": {"annotations": {"ots.dev/burn": huge}}}),
        )
        .await,
        "a 64-character burn value",
        &[
            "metadata.annotations[ots.dev/burn]: at most 63 characters",
            "this value has 64",
        ],
    );
    let longest = "t".repeat(63);
    try_patch(
        &patcher,
        &ns,
        "handoff",
        json!({"metadata": {"annotations": {"ots.dev/burn": longest}}}),
    )
    .await
    .expect("someone who may not read db may still burn the share");
    let burned = wait_for(&admin, &ns, "handoff", "burned", |o| {
        phase(o) == "Burned"
            && o.status.as_ref().and_then(|s| s.burn_token.as_deref()) == Some(longest.as_str())
    })
    .await;
    assert_eq!(calls(&server, "burn"), 1);
    assert_eq!(server.stats().live_secrets, 0);
    assert_eq!(metadata_key(&burned), metadata_key(&shared));
}

/// Resident and peak resident memory of a process, in bytes (`VmRSS`, `VmHWM`).
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .expect("a memory figure")
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The chart's memory limit for the operator's container, in bytes (`resources.limits.memory`).
fn charts_memory_limit() -> u64 {
    let values =
        std::fs::read_to_string(cluster::repo_root().join("deploy/helm/ots-operator/values.yaml"))
            .expect("read the chart's values");
    let values: serde_yaml::Value = serde_yaml::from_str(&values).expect("YAML");
    let limit = values["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit in the chart's values");
    let mib: u64 = limit
        .strip_suffix("Mi")
        .expect("a limit in Mi")
        .parse()
        .expect("a number");
    mib * 1024 * 1024
}

/// A figure from the operator's `/metrics` whose line starts with `series` (0 when absent or
/// not answering yet).
async fn metric(operator: &Operator, series: &str) -> f64 {
    let url = format!("http://{}/metrics", operator.metrics_addr());
    let Ok(response) = reqwest::get(url).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the operator has listed `count` shares and reconciled each of them once (each
/// fails with SecretNotFound, so its reconcile counts as such an error).
async fn wait_reconciled(operator: &Operator, count: f64, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let listed = metric(operator, "ots_operator_resources{phase=\"Pending\"} ").await;
        let reconciled = metric(
            operator,
            "ots_operator_reconciles_total{result=\"error\",reason=\"SecretNotFound\"} ",
        )
        .await;
        if listed >= count && reconciled >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the operator listed {listed} and reconciled {reconciled} of {count} shares:\n{}",
            operator
                .logs()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// F6, the cache: one tenant's 300 shares, each with a 240 KiB annotation and naming a Secret
/// that does not exist, grew the operator from 15 MB to 109 MB (the chart's limit is 128Mi), and
/// to 417 MB while re-listing after a restart: a crash loop. Now the cache keeps only what the
/// operator reads, and lists in small pages.
#[tokio::test]
async fn memory_stays_under_the_charts_limit_with_1000_shares_carrying_250_kib_annotations() {
    use futures::StreamExt;
    let (admin, ns) = guarded_namespace("f6-memory", b"unused").await;
    let server = ots_server(Config::default());
    let mut operator = chart::start_operator(&[&ns], &server.url(), &[]).await;
    wait_reconciled(&operator, 0.0, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = memory_of(operator.pid());

    // 250 KiB of annotations per share (the apiserver allows 256 KiB in all), no Secret to share.
    const SHARES: usize = 1000;
    let blob = "x".repeat(250 * 1024);
    let created = Instant::now();
    futures::stream::iter(0..SHARES)
        .map(|i| {
            let (admin, ns, blob) = (admin.clone(), ns.clone(), blob.clone());
            async move {
                let share: OneTimeShare = serde_json::from_value(json!({
                    "apiVersion": "ots.dev/v1alpha1",
                    "kind": "OneTimeShare",
                    "metadata": {"name": format!("s{i}"), "annotations": {"tenant.example/blob": blob}},
                    "spec": {"secretRef": {"name": "does-not-exist", "key": "password"}},
                }))
                .expect("a valid OneTimeShare");
                shares(&admin, &ns)
                    .create(&PostParams::default(), &share)
                    .await
                    .expect("create a share with a 250 KiB annotation");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let created = created.elapsed();
    wait_reconciled(&operator, SHARES as f64, Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (steady, steady_peak) = memory_of(operator.pid());

    // A restart re-lists all 1,000 (250 MB of objects) at once.
    operator.kill();
    let restarted = chart::start_operator(&[&ns], &server.url(), &[]).await;
    let listed = Instant::now();
    wait_reconciled(&restarted, SHARES as f64, Duration::from_secs(300)).await;
    let listed = listed.elapsed();
    let (after_restart, restart_peak) = memory_of(restarted.pid());

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let limit = charts_memory_limit();
    println!(
        "F6 memory ({SHARES} shares x 250 KiB annotations; chart limit {:.0} MiB):\n  \
         idle {:.1} MiB | steady {:.1} MiB (peak {:.1}) | after a restart's re-list {:.1} MiB \
         (peak during the re-list {:.1}) | created in {:.0?}, re-listed in {:.0?}",
        mib(limit),
        mib(idle),
        mib(steady),
        mib(steady_peak),
        mib(after_restart),
        mib(restart_peak),
        created,
        listed
    );
    assert!(
        steady_peak < limit,
        "steady peak {:.1} MiB",
        mib(steady_peak)
    );
    assert!(
        restart_peak < limit,
        "re-list peak {:.1} MiB",
        mib(restart_peak)
    );
    assert_eq!(server.stats().live_secrets, 0, "nothing was shared");
}
