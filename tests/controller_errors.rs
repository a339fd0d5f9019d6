//! Bad input and failures: each gets its documented reason, a Warning Event, no panic, and a
//! bounded number of calls to the OTS server; what can recover does so by itself.

mod support;

use ots_testserver::{Account, Config, Faults};
use serde_json::json;
use std::time::Duration;
use support::cluster::{repo_root, tool_command};
use support::operator::*;
use support::world::World;

/// Waits for Ready=False with `reason` and a Warning Event with the same reason; returns the
/// condition message.
async fn expect_failure(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
    phase_word: &str,
) -> String {
    let obj = wait_for(client, ns, name, reason, |o| ready_reason_is(o, reason)).await;
    let (status, _, message) = ready(&obj).unwrap();
    assert_eq!(status, "False");
    assert_eq!(phase(&obj), phase_word, "phase for {reason}");
    assert!(
        obj.status.as_ref().unwrap().link.is_none(),
        "no link for {reason}"
    );
    let note = wait_event(client, ns, name, "Warning", reason).await;
    assert_eq!(note, message, "the Event says what the condition says");
    message
}

#[tokio::test]
async fn a_missing_secret_waits_then_shares_within_thirty_seconds_of_appearing() {
    let w = World::start("missing-secret").await;
    w.share_key("early", "later", "password").await;
    let message = expect_failure(&w.client, &w.ns, "early", "SecretNotFound", "Pending").await;
    assert!(message.contains("\"later\""), "{message}");
    // Keep it missing long enough for several re-checks: the OTS w.server is never called.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        w.server.stats().requests_total,
        0,
        "no OTS call while the Secret is missing"
    );

    w.secret("later", &[("password", b"finally")]).await;
    let created = std::time::Instant::now();
    let shared = w.shared("early").await;
    assert!(
        created.elapsed() < Duration::from_secs(40),
        "shared {:?} after the Secret appeared",
        created.elapsed()
    );
    assert_eq!(ready(&shared).unwrap().1, "Shared");
    assert_eq!(w.reveal(&shared).await, "finally");
    assert!(!w.operator.logs().contains("panicked"));
}

#[tokio::test]
async fn a_missing_key_waits_and_an_added_key_unblocks_it() {
    let w = World::start("missing-key").await;
    w.secret("db", &[("user", b"alice")]).await;
    w.share_key("no-key", "db", "password").await;
    let message = expect_failure(&w.client, &w.ns, "no-key", "KeyNotFound", "Pending").await;
    assert!(message.contains("\"password\""), "{message}");
    assert_eq!(w.server.stats().requests_total, 0);
    w.update_secret("db", &[("user", b"alice"), ("password", b"added")])
        .await;
    let shared = w.shared("no-key").await;
    assert_eq!(w.reveal(&shared).await, "added");
}

#[tokio::test]
async fn values_the_server_cannot_take_fail_without_calling_it() {
    let w = World::start("bad-values").await;
    let big = vec![b'x'; 10_001];
    w.secret(
        "values",
        &[
            ("big", &big),
            ("binary", &[0xff, 0xfe, 0x00]),
            ("empty", b""),
        ],
    )
    .await;
    w.share_key("too-large", "values", "big").await;
    w.share_key("not-text", "values", "binary").await;
    w.share_key("empty", "values", "empty").await;

    let message = expect_failure(&w.client, &w.ns, "too-large", "SecretTooLarge", "Failed").await;
    assert!(
        message.contains("10001 bytes") && message.contains("10000"),
        "{message}"
    );
    expect_failure(&w.client, &w.ns, "not-text", "SecretNotText", "Failed").await;
    expect_failure(&w.client, &w.ns, "empty", "SecretEmpty", "Failed").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.server.stats().requests_total,
        0,
        "nothing was sent to the server"
    );
    assert!(!w.operator.logs().contains("panicked"));
}

#[tokio::test]
async fn a_missing_or_short_passphrase_is_reported_before_sharing() {
    let w = World::start("passphrase-errors").await;
    w.secret("db", &[("password", b"value")]).await;
    w.secret("phrases", &[("short", b"abc")]).await;
    w.share(
        "no-phrase",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "passphraseSecretRef": {"name": "nowhere", "key": "alice"}
        }),
    )
    .await;
    w.share(
        "short-phrase",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "passphraseSecretRef": {"name": "phrases", "key": "short"}
        }),
    )
    .await;
    expect_failure(
        &w.client,
        &w.ns,
        "no-phrase",
        "PassphraseNotFound",
        "Pending",
    )
    .await;
    let message = expect_failure(
        &w.client,
        &w.ns,
        "short-phrase",
        "InvalidPassphrase",
        "Failed",
    )
    .await;
    assert!(message.contains("4 to 128"), "{message}");
    assert!(
        !message.contains("abc"),
        "the passphrase never appears in a message"
    );
    assert_eq!(w.server.stats().requests_total, 0);
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_and_not_retried_in_a_loop() {
    let (client, ns) = setup("bad-credentials").await;
    let server = ots_server(Config {
        accounts: vec![Account::new("ops@example.com", "the-right-token")],
        ..Config::default()
    });
    let _operator = Operator::start_with(
        &fast_args(&ns, &server.url()),
        &[
            ("OTS_USERNAME", "ops@example.com"),
            ("OTS_API_TOKEN", "a-wrong-token"),
            ("RUST_LOG", "info"),
        ],
    );
    create_secret(&client, &ns, "db", &[("password", b"value")]).await;
    create_share(
        &client,
        &ns,
        "refused",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    expect_failure(&client, &ns, "refused", "Unauthorized", "Failed").await;
    let after_failure = server.stats().requests_total;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = server.stats().requests_total;
    assert!(after_failure <= 3, "{after_failure} calls before giving up");
    assert_eq!(
        later, after_failure,
        "no retry loop against a server that refuses the credentials"
    );
}

#[tokio::test]
async fn a_server_outage_is_reported_and_the_share_recovers_by_itself() {
    let w = World::start("outage").await;
    // The API version is probed once when the first share needs it: let that happen while up.
    w.secret("db", &[("password", b"first"), ("second", b"later")])
        .await;
    w.share_key("before", "db", "password").await;
    w.shared("before").await;

    w.server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    w.share_key("during", "db", "second").await;
    let message = expect_failure(&w.client, &w.ns, "during", "ServerUnavailable", "Pending").await;
    assert!(!message.is_empty());
    let failed_at = w.server.stats().requests_total;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let calls_during = w.server.stats().requests_total - failed_at;
    // Exponential backoff: 1 s, 2 s, 4 s … plus tracking of the first link (1-2 s): a handful.
    assert!(calls_during <= 12, "{calls_during} calls in 6 s of outage");

    w.server.set_faults(Faults::default());
    let shared = w.shared("during").await;
    assert_eq!(ready(&shared).unwrap().0, "True");
    assert_eq!(w.reveal(&shared).await, "later");
}

#[tokio::test]
async fn a_server_outside_the_allowlist_is_refused_without_contacting_it() {
    let (client, ns) = setup("allowlist").await;
    let server = ots_server(Config::default());
    let elsewhere = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"value")]).await;
    create_share(
        &client,
        &ns,
        "exfiltrate",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "server": {"url": elsewhere.url()}
        }),
    )
    .await;
    let message = expect_failure(&client, &ns, "exfiltrate", "ServerNotAllowed", "Failed").await;
    assert!(message.contains("--allow-server-url"), "{message}");
    assert_eq!(elsewhere.stats().requests_total, 0);
}

#[tokio::test]
async fn deleting_while_the_server_is_down_burns_once_it_is_back() {
    let w = World::start("delete-outage").await;
    w.secret("db", &[("password", b"value")]).await;
    w.share_key("doomed", "db", "password").await;
    w.shared("doomed").await;

    w.server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    w.delete_share("doomed").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        w.shares().get_opt("doomed").await.unwrap().is_some(),
        "held by the finalizer while the burn fails"
    );
    assert_eq!(w.server.stats().live_secrets, 1);

    w.server.set_faults(Faults::default());
    w.wait_gone("doomed").await;
    assert_eq!(w.server.stats().live_secrets, 0, "burned after the outage");
}

#[tokio::test]
async fn a_burn_that_cannot_succeed_releases_the_resource_with_a_warning() {
    let (client, ns) = setup("burn-gives-up").await;
    let server = ots_server(Config::default());
    let mut args = fast_args(&ns, &server.url());
    let at = args.iter().position(|a| a == "--burn-timeout").unwrap();
    args[at + 1] = "5s".to_owned();
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    create_secret(&client, &ns, "db", &[("password", b"value")]).await;
    create_share(
        &client,
        &ns,
        "stuck",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "stuck").await;
    let expires = shared.status.unwrap().expires_at.unwrap().0.to_string();

    server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    delete_share(&client, &ns, "stuck").await;
    wait_gone(&client, &ns, "stuck").await;
    let note = wait_event(&client, &ns, "stuck", "Warning", "BurnFailed").await;
    assert!(
        note.contains(&expires),
        "the warning says until when the link stays valid: {note}"
    );
}

#[tokio::test]
async fn schema_violations_are_rejected_by_kubectl_apply_with_a_readable_message() {
    let (_client, ns) = setup("schema").await;
    install_crd();
    let cases = [
        (
            json!({"secretRef": {"name": "db"}, "ttl": "30s"}),
            "ttl must be at least 60s",
        ),
        (
            json!({"secretRef": {"name": "db"}, "ttl": "1w"}),
            "ttl must be a whole number followed by s, m, h or d",
        ),
        (
            json!({"secretRef": {"name": "db"}, "recipient": "not-an-email"}),
            "recipient must be an email address",
        ),
        (
            json!({"secretRef": {"name": "db"}, "deletionPolicy": "Shred"}),
            "Unsupported value: \"Shred\"",
        ),
        (
            json!({"secretRef": {"name": "db"}, "onSecretChange": "Sometimes"}),
            "Unsupported value: \"Sometimes\"",
        ),
        (
            json!({"secretRef": {}}),
            "spec.secretRef.name: Required value",
        ),
        (json!({"ttl": "1h"}), "spec.secretRef: Required value"),
        (
            json!({"secretRef": {"name": "db"}, "passphraseSecretRef": {"name": "p"}}),
            "spec.passphraseSecretRef.key: Required value",
        ),
        (
            json!({"secretRef": {"name": "Not_Valid"}}),
            "name must be a valid Secret name",
        ),
        (
            json!({"secretRef": {"name": "db"}, "server": {"url": "ftp://x/y"}}),
            "url must be a base URL",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let manifest = json!({
            "apiVersion": "ots.dev/v1alpha1",
            "kind": "OneTimeShare",
            "metadata": {"name": format!("bad-{i}"), "namespace": ns},
            "spec": spec,
        });
        let path = std::env::temp_dir().join(format!("ots-schema-{}-{i}.json", std::process::id()));
        std::fs::write(&path, manifest.to_string()).unwrap();
        let out = tool_command("kubectl")
            .args(["apply", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} was accepted");
        assert!(
            stderr.contains(expected),
            "{spec}: expected {expected:?} in:\n{stderr}"
        );
    }
    let _ = repo_root();
}

#[tokio::test]
async fn share_defining_fields_are_immutable_but_the_deletion_policy_is_not() {
    let (client, ns) = setup("immutable").await;
    install_crd();
    create_share(
        &client,
        &ns,
        "fixed",
        json!({"secretRef": {"name": "db", "key": "a"}, "ttl": "1h"}),
    )
    .await;
    let api = shares(&client, &ns);
    let patch = |spec: serde_json::Value| kube::api::Patch::Merge(json!({"spec": spec}));
    let params = kube::api::PatchParams::default();
    let err = api
        .patch(
            "fixed",
            &params,
            &patch(json!({"secretRef": {"name": "other"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secretRef is immutable"), "{err}");
    let err = api
        .patch("fixed", &params, &patch(json!({"ttl": "2h"})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ttl is immutable"), "{err}");
    api.patch("fixed", &params, &patch(json!({"deletionPolicy": "Keep"})))
        .await
        .expect("deletionPolicy may change");
}
