//! OtsServers and ClusterOtsServers on a real control plane: each server object's Ready
//! condition says whether its server answers and accepts its credentials, with a distinct reason
//! for each way it does not, a URL off the allowlist is never called, and a rotated token is
//! picked up within seconds without a restart.

mod support;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::PostParams;
use kube::{Api, Resource};
use ots_operator::resource::{ClusterOtsServer, OtsServer};
use ots_testserver::{Account, Config, CustomDomain};
use serde_json::json;
use std::time::{Duration, Instant};
use support::operator::{WAIT, ots_server};
use support::world::World;

const USER: &str = "ops@example.com";
const TOKEN: &str = "the-right-token-4f9a";
const WRONG_TOKEN: &str = "a-wrong-token-77c1";

/// Every ClusterOtsServer is seen by every operator on the control plane, and each operator
/// reads a ClusterOtsServer's Secrets in its own namespace: the tests of this binary take turns,
/// so that only one operator at a time writes a server's status.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server an unreachable port (nothing listens on port 1 of the loopback).
const UNREACHABLE: &str = "http://127.0.0.1:1";

fn account_server() -> Config {
    Config {
        accounts: vec![Account::new(USER, TOKEN)],
        ..Config::default()
    }
}

async fn create_server(w: &World, name: &str, spec: serde_json::Value) {
    let spec = serde_json::from_value(spec).expect("an OtsServer spec");
    Api::<OtsServer>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &OtsServer::new(name, spec))
        .await
        .expect("create the OtsServer");
}

fn ready_of<'a>(conditions: impl IntoIterator<Item = &'a Condition>) -> Option<&'a Condition> {
    conditions.into_iter().find(|c| c.type_ == "Ready")
}

/// Polls an OtsServer until its Ready condition has `status` and `reason`; returns it.
async fn wait_ready(w: &World, name: &str, status: &str, reason: &str) -> OtsServer {
    let api = Api::<OtsServer>::namespaced(w.client.clone(), &w.ns);
    let deadline = Instant::now() + WAIT;
    loop {
        let server = api.get(name).await.expect("get the OtsServer");
        let conditions = server.status.iter().flat_map(|s| s.conditions.iter());
        if ready_of(conditions).is_some_and(|c| c.status == status && c.reason == reason) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "OtsServer {name} never became Ready={status} ({reason}): {:?}\n{}",
            server.status,
            w.operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready_message(server: &OtsServer) -> String {
    let status = server.status.as_ref().expect("a status");
    ready_of(&status.conditions)
        .expect("a Ready condition")
        .message
        .clone()
}

#[tokio::test]
async fn each_way_a_server_fails_has_its_own_reason_and_a_url_off_the_allowlist_is_never_called() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A second server the operator's allowlist does not name.
    let elsewhere = ots_server(account_server());
    let w = World::with(
        "servers-reasons",
        account_server(),
        &["--allow-server-url", UNREACHABLE],
    )
    .await;
    let url = w.server.url();
    w.secret(
        "good",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    w.secret(
        "wrong",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", WRONG_TOKEN.as_bytes()),
        ],
    )
    .await;
    w.secret("no-token", &[("username", USER.as_bytes())]).await;
    w.secret(
        "renamed-keys",
        &[("email", USER.as_bytes()), ("token", TOKEN.as_bytes())],
    )
    .await;

    create_server(
        &w,
        "works",
        json!({"url": url, "credentialsSecretRef": {"name": "good"}}),
    )
    .await;
    create_server(
        &w,
        "own-keys",
        json!({"url": url, "api": "v1", "credentialsSecretRef": {"name": "renamed-keys", "usernameKey": "email", "apiTokenKey": "token"}}),
    )
    .await;
    create_server(&w, "anonymous", json!({"url": url})).await;
    create_server(
        &w,
        "rejected",
        json!({"url": url, "credentialsSecretRef": {"name": "wrong"}}),
    )
    .await;
    create_server(
        &w,
        "missing-key",
        json!({"url": url, "credentialsSecretRef": {"name": "no-token"}}),
    )
    .await;
    create_server(
        &w,
        "missing-secret",
        json!({"url": url, "credentialsSecretRef": {"name": "absent"}}),
    )
    .await;
    create_server(&w, "unreachable", json!({"url": UNREACHABLE})).await;
    create_server(
        &w,
        "not-allowed",
        json!({"url": elsewhere.url(), "credentialsSecretRef": {"name": "good"}}),
    )
    .await;

    let works = wait_ready(&w, "works", "True", "Verified").await;
    let status = works.status.clone().unwrap();
    assert_eq!(
        status.api.as_deref(),
        Some("v2"),
        "auto resolves to v2 on this server"
    );
    assert_eq!(status.observed_generation, works.meta().generation);
    assert!(status.last_checked_at.is_some());
    assert!(ready_message(&works).contains("accepts the credentials"));
    let own_keys = wait_ready(&w, "own-keys", "True", "Verified").await;
    assert_eq!(
        own_keys.status.unwrap().api.as_deref(),
        Some("v1"),
        "spec.api v1 is kept"
    );
    let anonymous = wait_ready(&w, "anonymous", "True", "Verified").await;
    assert!(ready_message(&anonymous).contains("anonymous"));

    let rejected = wait_ready(&w, "rejected", "False", "Unauthorized").await;
    let missing_key = wait_ready(&w, "missing-key", "False", "CredentialsNotFound").await;
    assert!(ready_message(&missing_key).contains("\"apiToken\""));
    let missing_secret = wait_ready(&w, "missing-secret", "False", "CredentialsNotFound").await;
    assert!(ready_message(&missing_secret).contains("\"absent\""));
    let unreachable = wait_ready(&w, "unreachable", "False", "ServerUnavailable").await;
    let not_allowed = wait_ready(&w, "not-allowed", "False", "ServerNotAllowed").await;
    assert!(ready_message(&not_allowed).contains("allowlist"));

    // The server off the allowlist was never called, not even to ask its version.
    assert!(
        elsewhere.requests().is_empty(),
        "the operator called a server off its allowlist: {:?}",
        elsewhere.requests()
    );
    // Credentials were checked on the allowed server (v2 version route, v1 authcheck).
    assert!(w.calls("version") + w.calls("authcheck") >= 2);

    // No token reaches a status message or a log line.
    let messages = [
        &works,
        &anonymous,
        &rejected,
        &missing_key,
        &missing_secret,
        &unreachable,
        &not_allowed,
    ]
    .map(ready_message)
    .join("\n");
    let logs = w.operator.logs();
    for token in [TOKEN, WRONG_TOKEN] {
        assert!(!messages.contains(token), "a token in a status message");
        assert!(!logs.contains(token), "a token in the operator's log");
    }
}

#[tokio::test]
async fn a_rotated_token_makes_the_server_ready_again_within_10_seconds_without_a_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut w = World::with("servers-rotation", account_server(), &[]).await;
    w.secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", WRONG_TOKEN.as_bytes()),
        ],
    )
    .await;
    create_server(
        &w,
        "rotating",
        json!({"url": w.server.url(), "credentialsSecretRef": {"name": "creds"}}),
    )
    .await;
    wait_ready(&w, "rotating", "False", "Unauthorized").await;
    // The server object's Events tell each change of its Ready condition, never the token.
    let refused =
        support::operator::wait_event(&w.client, &w.ns, "rotating", "Warning", "Unauthorized")
            .await;
    assert!(!refused.contains(WRONG_TOKEN), "{refused}");

    let rotated = Instant::now();
    w.update_secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    wait_ready(&w, "rotating", "True", "Verified").await;
    let took = rotated.elapsed();
    assert!(
        took <= Duration::from_secs(10),
        "Ready again after {took:?}"
    );
    assert!(w.operator.is_running(), "no restart");
    let verified =
        support::operator::wait_event(&w.client, &w.ns, "rotating", "Normal", "Verified").await;
    assert!(!verified.contains(TOKEN), "{verified}");

    // And back: a revoked token is noticed as quickly.
    let revoked = Instant::now();
    w.update_secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", WRONG_TOKEN.as_bytes()),
        ],
    )
    .await;
    wait_ready(&w, "rotating", "False", "Unauthorized").await;
    assert!(
        revoked.elapsed() <= Duration::from_secs(10),
        "{:?}",
        revoked.elapsed()
    );
}

#[tokio::test]
async fn a_cluster_server_reads_its_credentials_in_the_operators_namespace() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The test operator's own namespace (its --state-namespace) is the test namespace.
    let w = World::with("servers-cluster", account_server(), &[]).await;
    w.secret(
        "platform-creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    let name = format!("{}-eu", w.ns);
    let api = Api::<ClusterOtsServer>::all(w.client.clone());
    let spec = serde_json::from_value(json!({
        "url": w.server.url(),
        "credentialsSecretRef": {"name": "platform-creds"},
        "conditions": [{"namespaces": [w.ns]}],
        "policy": {"maxTtl": "7d", "defaultTtl": "1d", "passphraseRequired": true}
    }))
    .expect("a ClusterOtsServer spec");
    api.create(&PostParams::default(), &ClusterOtsServer::new(&name, spec))
        .await
        .expect("create the ClusterOtsServer");

    let deadline = Instant::now() + WAIT;
    let server = loop {
        let server = api.get(&name).await.expect("get the ClusterOtsServer");
        let conditions = server.status.iter().flat_map(|s| s.conditions.iter());
        if ready_of(conditions).is_some_and(|c| c.status == "True" && c.reason == "Verified") {
            break server;
        }
        assert!(
            Instant::now() < deadline,
            "the ClusterOtsServer never became Ready: {:?}\n{}",
            server.status,
            w.operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(server.status.unwrap().api.as_deref(), Some("v2"));
    api.delete(&name, &Default::default())
        .await
        .expect("delete the ClusterOtsServer");
}

#[tokio::test]
async fn a_policy_whose_default_ttl_exceeds_its_maximum_is_refused_at_apply() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (client, ns) = support::operator::setup("servers-cel").await;
    support::operator::install_crd();
    let api = Api::<OtsServer>::namespaced(client, &ns);
    let refused = |spec: serde_json::Value| {
        let api = api.clone();
        async move {
            let spec = serde_json::from_value(spec).expect("an OtsServer spec");
            match api
                .create(&PostParams::default(), &OtsServer::new("bad", spec))
                .await
            {
                Err(kube::Error::Api(status)) => status.message,
                other => panic!("accepted: {other:?}"),
            }
        }
    };
    let message = refused(json!({"url": "https://eu.onetimesecret.com", "policy": {"maxTtl": "1d", "defaultTtl": "2d"}})).await;
    assert!(
        message.contains("defaultTtl must not be longer than policy.maxTtl"),
        "{message}"
    );
    let message = refused(json!({"url": "https://eu.onetimesecret.com/some/path"})).await;
    assert!(message.contains("url must be a base URL"), "{message}");
    let message = refused(json!({"url": "ftp://eu.onetimesecret.com"})).await;
    assert!(message.contains("url must be a base URL"), "{message}");
    // Within the maximum: accepted.
    let spec = serde_json::from_value(
        json!({"url": "https://eu.onetimesecret.com", "policy": {"maxTtl": "2d", "defaultTtl": "48h"}}),
    )
    .expect("an OtsServer spec");
    api.create(&PostParams::default(), &OtsServer::new("fine", spec))
        .await
        .expect("a consistent policy is accepted");
}

#[tokio::test]
async fn each_share_goes_to_the_server_it_names_and_a_namespace_not_allowed_fails_without_a_call() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const USER_B: &str = "platform@example.com";
    const TOKEN_B: &str = "the-platform-token-9e2d";
    let server_b = ots_server(Config {
        accounts: vec![Account::new(USER_B, TOKEN_B)],
        ..Config::default()
    });
    let (_, ns_b) = support::operator::setup("servers-team-b").await;
    let w = World::with(
        "servers-team-a",
        account_server(),
        &["--namespace", &ns_b, "--allow-server-url", &server_b.url()],
    )
    .await;
    let ns_a = w.ns.clone();
    let url_a = w.server.url();

    // Team A's own server, and the platform's ClusterOtsServer (the default) for team B only;
    // its Secret lives in the operator's namespace (the test operator's is team A's).
    w.secret(
        "a-creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    w.secret(
        "b-creds",
        &[
            ("username", USER_B.as_bytes()),
            ("apiToken", TOKEN_B.as_bytes()),
        ],
    )
    .await;
    create_server(
        &w,
        "team-a",
        json!({"url": url_a, "credentialsSecretRef": {"name": "a-creds"}}),
    )
    .await;
    let platform = format!("{ns_a}-platform");
    let cluster_servers = Api::<ClusterOtsServer>::all(w.client.clone());
    let mut object = ClusterOtsServer::new(
        &platform,
        serde_json::from_value(json!({
            "url": server_b.url(),
            "credentialsSecretRef": {"name": "b-creds"},
            "conditions": [{"namespaces": [ns_b]}]
        }))
        .expect("a ClusterOtsServer spec"),
    );
    object.metadata.annotations = Some(
        [("ots.dev/default-server".to_owned(), "true".to_owned())]
            .into_iter()
            .collect(),
    );
    cluster_servers
        .create(&PostParams::default(), &object)
        .await
        .expect("create the ClusterOtsServer");

    for ns in [&ns_a, &ns_b] {
        support::operator::create_secret(&w.client, ns, "db", &[("password", b"pw")]).await;
    }
    let cluster_ref = json!({"kind": "ClusterOtsServer", "name": platform});
    w.share(
        "to-a",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": "team-a"}}),
    )
    .await;
    support::operator::create_share(
        &w.client,
        &ns_b,
        "to-b",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": cluster_ref}),
    )
    .await;
    support::operator::create_share(
        &w.client,
        &ns_b,
        "by-default",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    w.share(
        "refused",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": cluster_ref}),
    )
    .await;
    w.share(
        "no-such-server",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": "absent"}}),
    )
    .await;

    let to_a = w.shared("to-a").await;
    let link_a = to_a.status.clone().unwrap().link.unwrap();
    assert!(link_a.starts_with(&format!("{url_a}/secret/")), "{link_a}");
    for name in ["to-b", "by-default"] {
        let shared = support::operator::wait_shared(&w.client, &ns_b, name).await;
        let link = shared.status.unwrap().link.unwrap();
        assert!(
            link.starts_with(&format!("{}/secret/", server_b.url())),
            "{name}: {link}"
        );
    }
    let refused = w.wait_phase("refused", "Failed").await;
    assert!(support::operator::ready_reason_is(
        &refused,
        "ServerNotAllowed"
    ));
    let note = w.wait_event("refused", "Warning", "ServerNotAllowed").await;
    assert!(note.contains(&platform) && note.contains(&ns_a), "{note}");
    let missing = w
        .wait_for("no-such-server", "reason ServerNotFound", |o| {
            support::operator::ready_reason_is(o, "ServerNotFound")
        })
        .await;
    assert_eq!(support::operator::phase(&missing), "Pending");

    // Each server got exactly its own shares: the refused one never reached server B.
    assert_eq!(w.calls("share"), 1, "server A: team A's share");
    assert_eq!(
        support::operator::calls(&server_b, "share"),
        2,
        "server B: team B's two shares, nothing of team A's"
    );
    // Each under its server's account.
    let owners = |server: &ots_testserver::TestServer| -> Vec<String> {
        server
            .live_receipts()
            .into_iter()
            .map(|r| r.custid)
            .collect()
    };
    assert_eq!(owners(&w.server), [USER]);
    assert_eq!(owners(&server_b), [USER_B, USER_B]);

    // Each server object counts the live links of the shares that use it (the default server's
    // include the share that named none).
    let deadline = Instant::now() + WAIT;
    loop {
        let team_a = Api::<OtsServer>::namespaced(w.client.clone(), &ns_a)
            .get("team-a")
            .await
            .expect("get the OtsServer");
        let platform_server = cluster_servers
            .get(&platform)
            .await
            .expect("get the ClusterOtsServer");
        let counts = (
            team_a.status.and_then(|s| s.live_shares),
            platform_server.status.and_then(|s| s.live_shares),
        );
        if counts == (Some(1), Some(2)) {
            break;
        }
        assert!(Instant::now() < deadline, "live shares: {counts:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    cluster_servers
        .delete(&platform, &Default::default())
        .await
        .expect("delete the ClusterOtsServer");
}

#[tokio::test]
async fn each_server_objects_policy_applies_to_its_shares_before_any_share_call() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::with("servers-policy", Config::default(), &[]).await;
    let url = w.server.url();
    create_server(
        &w,
        "strict",
        json!({"url": url, "policy": {"maxTtl": "1h", "passphraseRequired": true, "allowedRecipientDomains": ["example.com"]}}),
    )
    .await;
    create_server(
        &w,
        "lenient",
        json!({"url": url, "policy": {"defaultTtl": "2h"}}),
    )
    .await;
    w.secret("db", &[("password", b"pw")]).await;
    w.secret("pass", &[("phrase", b"correct horse")]).await;
    let spec = |server: &str, extra: serde_json::Value| {
        let mut spec = json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": server}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        spec
    };
    let passphrase = json!({"name": "pass", "key": "phrase"});
    w.share(
        "too-long",
        spec(
            "strict",
            json!({"ttl": "2h", "passphraseSecretRef": passphrase}),
        ),
    )
    .await;
    w.share("no-passphrase", spec("strict", json!({"ttl": "30m"})))
        .await;
    w.share(
        "fine",
        spec(
            "strict",
            json!({"ttl": "30m", "passphraseSecretRef": passphrase}),
        ),
    )
    .await;
    w.share("defaulted", spec("lenient", json!({}))).await;

    for (name, rule) in [("too-long", "maxTtl"), ("no-passphrase", "passphrase")] {
        let failed = w.wait_phase(name, "Failed").await;
        let (_, reason, message) = support::operator::ready(&failed).unwrap();
        assert_eq!(reason, "PolicyViolation");
        assert!(
            message.contains("OtsServer \"strict\"") && message.contains(rule),
            "{message}"
        );
        w.wait_event(name, "Warning", "PolicyViolation").await;
    }
    let fine = w.shared("fine").await;
    assert_eq!(fine.status.unwrap().ttl_seconds, Some(1800));
    let defaulted = w.shared("defaulted").await;
    assert_eq!(
        defaulted.status.unwrap().ttl_seconds,
        Some(7200),
        "the lenient server's defaultTtl"
    );
    assert_eq!(
        w.calls("share"),
        2,
        "the refused shares never reached the server"
    );

    // A server that allows one live link per Secret: a second share of it waits, and goes
    // once the first link is gone.
    create_server(
        &w,
        "single",
        json!({"url": url, "policy": {"maxLiveSharesPerSecret": 1}}),
    )
    .await;
    w.secret("token", &[("value", b"t0k3n")]).await;
    for name in ["one", "two"] {
        w.share(
            name,
            json!({"secretRef": {"name": "token", "key": "value"}, "serverRef": {"kind": "OtsServer", "name": "single"}}),
        )
        .await;
    }
    let deadline = Instant::now() + WAIT;
    let (live, waiting) = loop {
        let one = w.shares().get("one").await.expect("get one");
        let two = w.shares().get("two").await.expect("get two");
        let waits = |o: &ots_operator::resource::OneTimeShare| {
            support::operator::ready_reason_is(o, "TooManyShares")
        };
        match (
            support::operator::phase(&one),
            support::operator::phase(&two),
        ) {
            ("Shared", _) if waits(&two) => break ("one", "two"),
            (_, "Shared") if waits(&one) => break ("two", "one"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "one live, one waiting: never");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(w.calls("share"), 3, "the waiting share was not sent");
    w.delete_share(live).await;
    w.shared(waiting).await;
    assert_eq!(w.calls("share"), 4);
}

#[tokio::test]
async fn a_servers_own_ca_is_trusted_for_it_alone_and_without_it_the_server_is_tls_untrusted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let upstream = ots_server(Config::default());
    let front = support::tls::tls_front(upstream.addr()).await;
    let front = front.as_str().trim_end_matches('/').to_owned();
    let w = World::with(
        "servers-tls",
        Config::default(),
        &["--allow-server-url", &front],
    )
    .await;
    w.secret(
        "private-ca",
        &[("ca.crt", support::tls::PRIVATE_CA_CERT.as_bytes())],
    )
    .await;
    create_server(
        &w,
        "trusted",
        json!({"url": front, "caBundleSecretRef": {"name": "private-ca", "key": "ca.crt"}}),
    )
    .await;
    create_server(&w, "untrusted", json!({"url": front})).await;
    wait_ready(&w, "trusted", "True", "Verified").await;
    let untrusted = wait_ready(&w, "untrusted", "False", "TlsUntrusted").await;
    assert!(
        ready_message(&untrusted).contains("127.0.0.1"),
        "{}",
        ready_message(&untrusted)
    );

    w.secret("db", &[("password", b"pw")]).await;
    for server in ["trusted", "untrusted"] {
        w.share(
            &format!("via-{server}"),
            json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": server}}),
        )
        .await;
    }
    let shared = w.shared("via-trusted").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
    let refused = w
        .wait_for("via-untrusted", "reason TlsUntrusted", |o| {
            support::operator::ready_reason_is(o, "TlsUntrusted")
        })
        .await;
    assert_ne!(support::operator::phase(&refused), "Shared");
    // The share says which server object is at fault.
    let message = refused
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(r#"OtsServer "untrusted""#),
        "the share does not name its server object: {message}"
    );
    assert_eq!(
        support::operator::calls(&upstream, "share"),
        1,
        "only through the trusted server"
    );

    // Deleting the share burns its link through the same trust (its record keeps the CA).
    w.delete_share("via-trusted").await;
    w.wait_gone("via-trusted").await;
    assert_eq!(upstream.stats().live_secrets, 0, "the link was burned");
    assert!(support::operator::calls(&upstream, "burn") >= 1);
}

/// An operator whose ClusterOtsServer watch cannot list (its ClusterRole, say of an older
/// chart, grants `get` on them but not `list`/`watch`): a share naming a ClusterOtsServer is
/// still shared through it (read from the API server), never left waiting for a cache that will
/// not fill, and a share naming one that does not exist says so.
#[tokio::test]
async fn a_share_names_a_cluster_server_even_while_the_operator_cannot_list_them() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let _turn = ONE_AT_A_TIME.lock().await;
    let (admin, ns) = support::operator::setup("servers-unlisted").await;
    support::operator::install_crd();
    let server = ots_server(account_server());
    let default_server = ots_server(Config::default());

    // The rights the operator needs, with ClusterOtsServers only to read one by one.
    let role_name = format!("{ns}-operator");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets", "namespaces", "events", "configmaps"], "verbs": ["*"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["*"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            {"apiGroups": ["ots.dev"], "resources": ["onetimeshares", "onetimeshares/status", "otsservers", "otsservers/status"], "verbs": ["*"]},
            {"apiGroups": ["ots.dev"], "resources": ["clusterotsservers"], "verbs": ["get"]},
            {"apiGroups": ["ots.dev"], "resources": ["clusterotsservers/status"], "verbs": ["get", "patch", "update"]}
        ]
    }))
    .expect("a ClusterRole");
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    support::cluster::create_service_account(&admin, &ns, "operator").await;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns}]
    }))
    .expect("a ClusterRoleBinding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the ClusterRoleBinding");
    let kubeconfig = support::cluster::service_account_kubeconfig(&admin, &ns, "operator").await;
    let kubeconfig = kubeconfig.to_string_lossy().to_string();

    support::operator::create_secret(
        &admin,
        &ns,
        "platform-creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    let name = format!("{ns}-platform");
    let cluster_servers = Api::<ClusterOtsServer>::all(admin.clone());
    let spec = serde_json::from_value(json!({
        "url": server.url(),
        "credentialsSecretRef": {"name": "platform-creds"},
        "conditions": [{"namespaces": [ns]}]
    }))
    .expect("a ClusterOtsServer spec");
    cluster_servers
        .create(&PostParams::default(), &ClusterOtsServer::new(&name, spec))
        .await
        .expect("create the ClusterOtsServer");

    let mut args = support::operator::fast_args(&ns, &default_server.url());
    args.extend(["--allow-server-url".to_owned(), server.url()]);
    let operator = support::operator::Operator::start_with(
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,ots_operator=debug"),
        ],
    );
    support::operator::create_secret(&admin, &ns, "db", &[("password", b"pw")]).await;
    support::operator::create_share(
        &admin,
        &ns,
        "through-platform",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "ClusterOtsServer", "name": name}}),
    )
    .await;
    support::operator::create_share(
        &admin,
        &ns,
        "through-nothing",
        json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "ClusterOtsServer", "name": format!("{ns}-absent")}}),
    )
    .await;

    let shared = support::operator::wait_shared(&admin, &ns, "through-platform").await;
    let link = shared.status.and_then(|s| s.link).expect("a link");
    assert!(
        link.starts_with(&format!("{}/secret/", server.url())),
        "{link}"
    );
    assert_eq!(support::operator::calls(&server, "share"), 1);
    let missing = support::operator::wait_for(
        &admin,
        &ns,
        "through-nothing",
        "reason ServerNotFound",
        |o| support::operator::ready_reason_is(o, "ServerNotFound"),
    )
    .await;
    assert_eq!(support::operator::phase(&missing), "Pending");
    assert_eq!(support::operator::calls(&default_server, "share"), 0);
    // The watch that cannot list is reported, once.
    let logs = operator.logs();
    assert!(
        logs.contains("server status controller failed"),
        "the failing ClusterOtsServer watch is not reported:\n{logs}"
    );

    cluster_servers
        .delete(&name, &Default::default())
        .await
        .expect("delete the ClusterOtsServer");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&role_name, &Default::default())
        .await
        .expect("delete the ClusterRoleBinding");
    Api::<ClusterRole>::all(admin)
        .delete(&role_name, &Default::default())
        .await
        .expect("delete the ClusterRole");
}

/// Deleting a server object (and its Secrets) while shares use it, in any order: the shares'
/// links stay tracked (a reveal is still seen) and are burned when the shares are deleted, with
/// the credentials and the CA the shares' records keep, across an operator restart too.
#[tokio::test]
async fn a_deleted_server_leaves_its_links_tracked_and_burned_even_after_a_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let upstream = ots_server(account_server());
    let front = support::tls::tls_front(upstream.addr()).await;
    let front = front.as_str().trim_end_matches('/').to_owned();
    let extra = ["--allow-server-url", front.as_str()];
    let mut w = World::with("servers-deleted", Config::default(), &extra).await;
    w.secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    w.secret(
        "private-ca",
        &[("ca.crt", support::tls::PRIVATE_CA_CERT.as_bytes())],
    )
    .await;
    create_server(
        &w,
        "team",
        json!({
            "url": front,
            "credentialsSecretRef": {"name": "creds"},
            "caBundleSecretRef": {"name": "private-ca", "key": "ca.crt"}
        }),
    )
    .await;
    w.secret("db", &[("password", b"pw")]).await;
    let names = ["revealed", "deleted-first", "deleted-after-restart"];
    for name in names {
        w.share(
            name,
            json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": "team"}}),
        )
        .await;
    }
    for name in names {
        w.shared(name).await;
    }
    assert_eq!(upstream.stats().live_secrets, 3);

    // The platform team removes the server and its Secrets first.
    Api::<OtsServer>::namespaced(w.client.clone(), &w.ns)
        .delete("team", &Default::default())
        .await
        .expect("delete the OtsServer");
    w.delete_secret("creds").await;
    w.delete_secret("private-ca").await;

    // A reveal is still seen: the link is tracked where it lives.
    let revealed = w.shared("revealed").await;
    assert_eq!(
        support::operator::open_link(&upstream, &revealed).await,
        "pw"
    );
    w.wait_phase("revealed", "Received").await;
    assert_eq!(
        support::operator::phase(&w.shared("deleted-first").await),
        "Shared"
    );

    w.delete_share("deleted-first").await;
    w.wait_gone("deleted-first").await;
    assert_eq!(upstream.stats().live_secrets, 1, "deleted-first was burned");

    // After a restart nothing in memory remembers the server's CA: the record must.
    w.operator.kill();
    w.operator = support::operator::Operator::start(&w.ns, &w.server.url(), &extra);
    w.delete_share("deleted-after-restart").await;
    w.wait_gone("deleted-after-restart").await;
    assert_eq!(
        upstream.stats().live_secrets,
        0,
        "deleted-after-restart was burned"
    );
    assert!(
        !w.operator.logs().contains(TOKEN),
        "the API token appears in the log"
    );
}

/// Shares made with the operator's flags, then a platform team adds a default ClusterOtsServer
/// at another server and the operator restarts (a chart upgrade with `servers:`): nothing is
/// re-shared or moved. The old links stay tracked and are burned where they live; only new
/// shares go to the new default server.
#[tokio::test]
async fn a_default_server_added_later_moves_no_existing_link() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let platform_server = ots_server(account_server());
    let extra = ["--allow-server-url", &platform_server.url()];
    let mut w = World::with("servers-later", Config::default(), &extra).await;
    w.secret("db", &[("password", b"pw")]).await;
    for name in ["kept", "revealed-after", "deleted-after"] {
        w.share_key(name, "db", "password").await;
    }
    let mut before = std::collections::BTreeMap::new();
    for name in ["kept", "revealed-after", "deleted-after"] {
        let status = w.shared(name).await.status.expect("a status");
        before.insert(name, (status.metadata_key, status.link));
    }
    assert_eq!(w.calls("share"), 3);

    w.secret(
        "platform-creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    let name = format!("{}-default", w.ns);
    let cluster_servers = Api::<ClusterOtsServer>::all(w.client.clone());
    let mut object = ClusterOtsServer::new(
        &name,
        serde_json::from_value(json!({
            "url": platform_server.url(),
            "credentialsSecretRef": {"name": "platform-creds"},
        }))
        .expect("a ClusterOtsServer spec"),
    );
    object.metadata.annotations = Some(
        [("ots.dev/default-server".to_owned(), "true".to_owned())]
            .into_iter()
            .collect(),
    );
    cluster_servers
        .create(&PostParams::default(), &object)
        .await
        .expect("create the ClusterOtsServer");
    w.operator.kill();
    w.operator = support::operator::Operator::start(&w.ns, &w.server.url(), &extra);

    // A new share goes to the new default server...
    w.share_key("new", "db", "password").await;
    let new = w.shared("new").await;
    let link = new.status.and_then(|s| s.link).expect("a link");
    assert!(
        link.starts_with(&format!("{}/secret/", platform_server.url())),
        "{link}"
    );
    // ...and the old ones stay where they are, tracked.
    let revealed = w.shared("revealed-after").await;
    assert_eq!(w.reveal(&revealed).await, "pw");
    w.wait_phase("revealed-after", "Received").await;
    w.delete_share("deleted-after").await;
    w.wait_gone("deleted-after").await;
    let kept = w.shared("kept").await.status.expect("a status");
    assert_eq!(
        (kept.metadata_key, kept.link),
        before["kept"].clone(),
        "the kept link changed"
    );
    assert_eq!(w.calls("share"), 3, "nothing re-shared at the first server");
    assert_eq!(
        support::operator::calls(&platform_server, "share"),
        1,
        "only the new share at the default server"
    );
    assert_eq!(
        w.server.stats().live_secrets,
        1,
        "the deleted share's link was burned where it lived; the kept one is live"
    );

    cluster_servers
        .delete(&name, &Default::default())
        .await
        .expect("delete the ClusterOtsServer");
}

#[tokio::test]
async fn a_servers_rate_limit_spaces_its_share_calls_at_least_its_interval_apart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = World::with("servers-rate", Config::default(), &[]).await;
    create_server(
        &w,
        "slow",
        json!({"url": w.server.url(), "rateLimit": {"requestsPerSecond": 1, "burst": 1}}),
    )
    .await;
    w.secret("db", &[("password", b"pw")]).await;
    let names = ["r1", "r2", "r3", "r4"];
    for name in names {
        w.share(
            name,
            json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": "slow"}}),
        )
        .await;
    }
    for name in names {
        w.shared(name).await;
    }
    let mut sent: Vec<Duration> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| r.operation == "share")
        .map(|r| r.at)
        .collect();
    sent.sort();
    assert_eq!(sent.len(), names.len(), "one share call each: {sent:?}");
    // One call a second: consecutive share calls are (about) a second apart or more, whatever
    // else went to the server in between. Only a lower bound: slower is always allowed.
    for pair in sent.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "share calls closer than the server's limit allows: {sent:?}"
        );
    }
    assert!(
        sent[sent.len() - 1] - sent[0] >= Duration::from_millis(2900),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_share_domain_of_the_account_puts_the_link_on_it_and_any_other_fails_the_share() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let config = Config {
        custom_domains: vec![
            CustomDomain::new("secrets.example.com", USER),
            CustomDomain::new("theirs.example.com", "someone@else.example"),
        ],
        ..account_server()
    };
    let w = World::with("servers-domain", config, &[]).await;
    w.secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    let url = w.server.url();
    for (name, domain, api) in [
        ("branded", "secrets.example.com", "auto"),
        ("foreign", "theirs.example.com", "v2"),
        ("unknown", "nowhere.example.com", "v2"),
        ("old", "secrets.example.com", "v1"),
    ] {
        create_server(
            &w,
            name,
            json!({"url": url, "api": api, "credentialsSecretRef": {"name": "creds"}, "shareDomain": domain}),
        )
        .await;
    }
    // v1 has no share domain: the object says so before any share tries.
    let old = wait_ready(&w, "old", "False", "ShareDomainRefused").await;
    assert!(
        ready_message(&old).contains("v1"),
        "{}",
        ready_message(&old)
    );

    let value = b"domain-test-value-8c1";
    w.secret("db", &[("password", value)]).await;
    for (share, server) in [
        ("on-brand", "branded"),
        ("not-ours", "foreign"),
        ("nowhere", "unknown"),
        ("on-v1", "old"),
    ] {
        w.share(
            share,
            json!({"secretRef": {"name": "db", "key": "password"}, "serverRef": {"kind": "OtsServer", "name": server}}),
        )
        .await;
    }
    let shared = w.shared("on-brand").await;
    let link = shared.status.and_then(|s| s.link).expect("a link");
    assert!(
        link.starts_with("http://secrets.example.com/secret/"),
        "the link is on the share domain: {link}"
    );
    for (share, server, domain) in [
        ("not-ours", "foreign", "theirs.example.com"),
        ("nowhere", "unknown", "nowhere.example.com"),
        ("on-v1", "old", "secrets.example.com"),
    ] {
        let failed = w.wait_phase(share, "Failed").await;
        let (_, reason, message) = support::operator::ready(&failed).unwrap();
        assert_eq!(reason, "ShareDomainRefused", "{share}: {message}");
        assert!(
            message.contains("shareDomain")
                && message.contains(domain)
                && message.contains(&format!("OtsServer \"{server}\"")),
            "{share}: {message}"
        );
        assert!(!message.contains("domain-test-value"), "{message}");
        let event = w.wait_event(share, "Warning", "ShareDomainRefused").await;
        assert!(!event.contains("domain-test-value"), "{event}");
    }
    // The v1 one is never sent; each v2 refusal is asked once: the failure report's own status
    // write brings no second attempt before the backoff ends, and there is no retry loop.
    let calls = w.calls("share");
    let log: Vec<String> = w
        .server
        .requests()
        .iter()
        .filter(|r| r.operation == "share")
        .map(|r| format!("{} {} {:?}", r.path, r.status, r.at))
        .collect();
    assert_eq!(calls, 3, "one success and the two refusals: {log:#?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        w.calls("share"),
        calls,
        "a refused share domain is not retried at once"
    );
    assert!(
        !w.operator.logs().contains("domain-test-value"),
        "the value never reaches a log line"
    );
}
