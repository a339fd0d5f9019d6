//! An outcome that outlives Events, on a real control plane: `status.history` keeps each ended
//! link (when it was shared, how and when it ended), bounded, across reissues, expiries and a
//! wiped status; `receivedAt`, `burnedAt` and `expiredAt` are set when each happens; every
//! transition is one structured log line; and none of it holds a link, a metadata key, the
//! value or the passphrase.

mod support;

use kube::api::{Patch, PatchParams};
use ots_operator::resource::{BURN_ANNOTATION, LinkEnd, MAX_HISTORY, OneTimeShare};
use serde_json::{Value, json};
use std::time::Duration;
use support::operator::*;
use support::world::World;

const VALUE: &str = "VALUE-3c81f0-history-must-not-hold";
const OTHER_VALUE: &str = "ROTATED-77ae12-history-must-not-hold";
const PASSPHRASE: &str = "PASSPHRASE-b94d2a-history-must-not-hold";

fn status(obj: &OneTimeShare) -> &ots_operator::resource::OneTimeShareStatus {
    obj.status.as_ref().expect("a status")
}

fn ends(obj: &OneTimeShare) -> Vec<LinkEnd> {
    status(obj).history.iter().map(|e| e.ended).collect()
}

/// Waits for a live link other than those in `seen`, adds it, and returns the share.
async fn next_link(w: &World, name: &str, seen: &mut Vec<OneTimeShare>) -> OneTimeShare {
    let keys: Vec<String> = seen.iter().map(metadata_key).collect();
    let obj = w
        .wait_for(name, "a new live link", |o| {
            phase(o) == "Shared"
                && o.status
                    .as_ref()
                    .and_then(|s| s.metadata_key.as_ref())
                    .is_some_and(|k| !keys.contains(k))
        })
        .await;
    seen.push(obj.clone());
    obj
}

/// Sets the `ots.dev/burn` annotation, as `kubectl ots burn --keep` would.
async fn burn_on_request(w: &World, name: &str, token: &str) {
    w.shares()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {BURN_ANNOTATION: token}}})),
        )
        .await
        .expect("annotate");
}

async fn kubectl_ots_get(ns: &str, name: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
        .arg("--kubeconfig")
        .arg(support::cluster::kubeconfig_path())
        .args(["-n", ns, "get", name])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run kubectl-ots");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn history_survives_five_reshares_and_an_expiry_and_is_bounded() {
    let w = World::start("history").await;
    let first = w
        .shared_db(
            "handoff",
            VALUE.as_bytes(),
            json!({"ttl": "60s", "onExpiry": "Reshare", "maxShares": 20}),
        )
        .await;
    let mut links = vec![first];

    // Five reissues: each ends the live link as Reshared.
    for n in 1..=5 {
        annotate(&w.client, &w.ns, "handoff", &format!("r{n}")).await;
        next_link(&w, "handoff", &mut links).await;
    }
    let reshared = links.last().cloned().expect("a link");
    assert_eq!(ends(&reshared), [LinkEnd::Reshared; 5]);

    // An expiry: the link ends Expired (expiredAt set) and onExpiry makes a new one.
    w.server.advance_clock(Duration::from_secs(120));
    let renewed = next_link(&w, "handoff", &mut links).await;
    let mut expected = vec![LinkEnd::Reshared; 5];
    expected.push(LinkEnd::Expired);
    assert_eq!(ends(&renewed), expected);
    assert_eq!(status(&renewed).expired_at, None, "a new link's own");
    let note = w.wait_event("handoff", "Normal", "Renewed").await;
    assert!(note.contains("expired unread"), "{note}");

    // More expiries than the bound holds: the oldest entries go first.
    for _ in 0..6 {
        w.server.advance_clock(Duration::from_secs(120));
        next_link(&w, "handoff", &mut links).await;
    }
    let last = links.last().cloned().expect("a link");
    let history = &status(&last).history;
    assert_eq!(links.len(), 13, "1 + 5 reissued + 7 renewed");
    assert_eq!(history.len(), MAX_HISTORY);
    let mut bounded = vec![LinkEnd::Reshared; 3];
    bounded.extend([LinkEnd::Expired; 7]);
    assert_eq!(ends(&last), bounded);
    // Each entry is one of the links, in order (links 3 to 12), and the live one is not listed.
    for (entry, link) in history.iter().zip(&links[2..12]) {
        assert_eq!(Some(&entry.shared_at), status(link).shared_at.as_ref());
        assert!(entry.ended_at >= entry.shared_at, "{entry:?}");
    }
    assert_ne!(
        Some(&history[MAX_HISTORY - 1].shared_at),
        status(&last).shared_at.as_ref()
    );

    // `kubectl ots get` shows it, one line per ended link, and no link.
    let shown = kubectl_ots_get(&w.ns, "handoff").await;
    assert!(shown.contains("History"), "{shown}");
    let rows = shown
        .lines()
        .filter(|l| l.contains("Reshared") || l.contains("Expired"))
        .count();
    assert_eq!(rows, MAX_HISTORY, "{shown}");
    for link in &links {
        assert!(!shown.contains(&metadata_key(link)), "{shown}");
        let url = status(link).link.clone().expect("a link");
        assert!(!shown.contains(&secret_key(&url)), "{shown}");
    }

    // A wiped status is restored from the operator's record, history included.
    w.shares()
        .patch_status(
            "handoff",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"metadataKey": "forged", "history": null}})),
        )
        .await
        .expect("patch the status");
    let restored = w
        .wait_for("handoff", "the status restored from the record", |o| {
            ready_reason_is(o, "StatusTampered") && !status(o).history.is_empty()
        })
        .await;
    assert_eq!(metadata_key(&restored), metadata_key(&last));
    assert_eq!(&status(&restored).history, history);
}

#[tokio::test]
async fn received_burned_and_expired_times_are_set_when_each_happens_and_a_new_link_clears_them() {
    let w = World::start("history-times").await;
    let read = w
        .shared_db("read", VALUE.as_bytes(), json!({"ttl": "60s"}))
        .await;
    w.share(
        "burn",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    w.share(
        "expire",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    let burn = w.shared("burn").await;
    let expire = w.shared("expire").await;
    for obj in [&read, &burn, &expire] {
        let s = status(obj);
        assert_eq!(
            (&s.received_at, &s.burned_at, &s.expired_at),
            (&None, &None, &None)
        );
        assert!(s.history.is_empty());
    }

    // Received: receivedAt, and one entry at that time.
    assert_eq!(w.reveal(&read).await, VALUE);
    let received = w.wait_phase("read", "Received").await;
    let s = status(&received);
    let received_at = s.received_at.clone().expect("receivedAt");
    assert!(received_at >= s.shared_at.clone().expect("sharedAt"));
    assert_eq!((&s.burned_at, &s.expired_at), (&None, &None));
    assert_eq!(ends(&received), [LinkEnd::Received]);
    assert_eq!(s.history[0].ended_at, received_at);
    assert_eq!(Some(&s.history[0].shared_at), s.shared_at.as_ref());

    // Burned on request: burnedAt.
    burn_on_request(&w, "burn", "now").await;
    let burned = w.wait_phase("burn", "Burned").await;
    let s = status(&burned);
    let burned_at = s.burned_at.clone().expect("burnedAt");
    assert_eq!((&s.received_at, &s.expired_at), (&None, &None));
    assert_eq!(ends(&burned), [LinkEnd::Burned]);
    assert_eq!(s.history[0].ended_at, burned_at);

    // Expired: expiredAt, no later than the link's expiresAt.
    w.server.advance_clock(Duration::from_secs(120));
    let expired = w.wait_phase("expire", "Expired").await;
    let s = status(&expired);
    let expired_at = s.expired_at.clone().expect("expiredAt");
    assert!(Some(&expired_at) <= s.expires_at.as_ref());
    assert_eq!((&s.received_at, &s.burned_at), (&None, &None));
    assert_eq!(ends(&expired), [LinkEnd::Expired]);

    // A reissue of the received share: a new link without the old one's times; the history keeps them.
    annotate(&w.client, &w.ns, "read", "again").await;
    let mut seen = vec![received.clone()];
    let again = next_link(&w, "read", &mut seen).await;
    let s = status(&again);
    assert_eq!(s.received_at, None);
    assert_eq!(ends(&again), [LinkEnd::Received]);
    assert_eq!(s.history[0].ended_at, received_at);
}

/// The operator's transition lines (JSON log), as objects.
fn transition_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "ots_operator::transition")
        .collect()
}

/// (name, phase, reason) of each transition line.
fn steps(lines: &[Value]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .map(|v| {
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (text("name"), text("phase"), text("reason"))
        })
        .collect()
}

#[tokio::test]
async fn transitions_are_logged_once_each_and_neither_log_nor_history_holds_a_secret() {
    let server = ots_server(Default::default());
    let w = World::with_operator("history-audit", server, |ns, url| {
        let mut args = fast_args(ns, url);
        args.extend(["--log-format".to_owned(), "json".to_owned()]);
        Operator::start_with(&args, &[("RUST_LOG", "info")])
    })
    .await;
    w.secret("db", &[("password", VALUE.as_bytes())]).await;
    w.secret(
        "phrases",
        &[("p", PASSPHRASE.as_bytes()), ("short", b"abc")],
    )
    .await;
    let key = |extra: Value| {
        let mut spec = json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"});
        spec.as_object_mut()
            .expect("an object")
            .extend(extra.as_object().expect("an object").clone());
        spec
    };
    w.share("read", key(json!({}))).await;
    w.share(
        "gated",
        key(json!({
            "passphraseSecretRef": {"name": "phrases", "key": "p"},
            "onSecretChange": "Reshare",
        })),
    )
    .await;
    w.share("late", key(json!({}))).await;
    w.share("gone", key(json!({}))).await;
    w.share(
        "broken",
        key(json!({"passphraseSecretRef": {"name": "phrases", "key": "short"}})),
    )
    .await;
    let mut links: Vec<OneTimeShare> = Vec::new();
    for name in ["read", "gated", "late", "gone"] {
        links.push(w.shared(name).await);
    }

    let read = links[0].clone();
    assert_eq!(w.reveal(&read).await, VALUE);
    w.wait_phase("read", "Received").await;
    // The changed Secret is reshared under a new link (the old one burned), then burned on request.
    w.update_secret("db", &[("password", OTHER_VALUE.as_bytes())])
        .await;
    let mut gated = vec![links[1].clone()];
    links.push(next_link(&w, "gated", &mut gated).await);
    burn_on_request(&w, "gated", "done").await;
    w.wait_phase("gated", "Burned").await;
    w.delete_share("gone").await;
    w.wait_gone("gone").await;
    w.wait_for("broken", "InvalidPassphrase", |o| {
        ready_reason_is(o, "InvalidPassphrase")
    })
    .await;
    w.server.advance_clock(Duration::from_secs(120));
    w.wait_phase("late", "Expired").await;

    let lines = transition_lines(&w.operator.logs());
    // Exactly these transitions, in this order, once each.
    let expected: [(&str, &[(&str, &str)]); 5] = [
        ("read", &[("Shared", "Shared"), ("Received", "Received")]),
        (
            "gated",
            &[
                ("Shared", "Shared"),
                ("Shared", "Reshared"),
                ("Burned", "Burned"),
            ],
        ),
        ("late", &[("Shared", "Shared"), ("Expired", "Expired")]),
        ("gone", &[("Shared", "Shared"), ("Burned", "Burned")]),
        ("broken", &[("Failed", "InvalidPassphrase")]),
    ];
    for (name, want) in expected {
        let got: Vec<(String, String)> = steps(&lines)
            .into_iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, phase, reason)| (phase, reason))
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(phase, reason)| (phase.to_string(), reason.to_string()))
            .collect();
        assert_eq!(got, want, "the transitions of {name}");
    }

    // Each line carries the resource's identity, times and server; the reshare names the end
    // of the link it replaced; the deletion's burn says so.
    for line in &lines {
        for field in ["namespace", "name", "uid", "phase", "reason", "at"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
        assert_eq!(line["namespace"], w.ns.as_str(), "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
    let line = |name: &str, reason: &str| {
        lines
            .iter()
            .find(|l| l["name"] == name && l["reason"] == reason)
            .unwrap_or_else(|| panic!("{name} {reason}"))
            .clone()
    };
    let reshared = line("gated", "Reshared");
    assert_eq!(reshared["ended"], "Reshared", "{reshared}");
    let server_url = status(&links[1]).server_url.clone().expect("a server URL");
    assert_eq!(reshared["server_url"], server_url.as_str(), "{reshared}");
    assert!(reshared["shared_at"].is_string() && reshared["expires_at"].is_string());
    assert!(line("read", "Received")["received_at"].is_string());
    assert!(line("gated", "Burned")["burned_at"].is_string());
    assert!(line("late", "Expired")["expired_at"].is_string());
    assert_eq!(line("gone", "Burned")["deleted"], true);
    assert_eq!(line("read", "Received")["deleted"], false);

    // No link, metadata key, value or passphrase in any transition line, nor in any history.
    let mut secrets = vec![
        VALUE.to_owned(),
        OTHER_VALUE.to_owned(),
        PASSPHRASE.to_owned(),
    ];
    for obj in &links {
        let s = status(obj);
        let link = s.link.clone().expect("a link");
        secrets.push(secret_key(&link));
        secrets.push(link);
        secrets.push(s.metadata_key.clone().expect("a metadata key"));
        secrets.push(s.metadata_link.clone().expect("a metadata link"));
    }
    let audit: Vec<String> = lines.iter().map(Value::to_string).collect();
    assert_eq!(audit.len(), 10);
    let histories: Vec<String> = w
        .shares()
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| {
            // Status without the fields that hold the current link: nothing else may.
            let mut s = serde_json::to_value(status(o)).expect("json");
            for field in ["link", "metadataKey", "metadataLink"] {
                s.as_object_mut().expect("an object").remove(field);
            }
            s.to_string()
        })
        .collect();
    assert!(histories.iter().any(|h| h.contains("history")));
    for secret in &secrets {
        for text in audit.iter().chain(&histories) {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
    }
}
