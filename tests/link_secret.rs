//! Links kept out of status (`spec.linkSecretRef`) on a real control plane: the link, the
//! metadata key and the metadata link are in a Secret the operator creates and owns, and never in
//! status, Events or `kubectl get -o wide` (the real kubectl); the operator's record stays the
//! truth (a deleted or edited link Secret is rewritten from it, never shared twice; a deletion
//! burns the recorded link); a Secret the operator did not make is never written into.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use ots_operator::resource::{OneTimeShare, RESHARE_ANNOTATION};
use ots_testserver::{Config, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};
use support::operator::*;
use support::tools::{kubectl, run};
use support::world::World;

const LINK_SECRET: &str = "handoff-link";

fn secrets(client: &kube::Client, ns: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), ns)
}

/// The value of one key of a Secret, as text.
fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8(v.0.clone()).expect("text"))
}

/// Waits until the link Secret exists and holds a link other than `not`, and returns it.
async fn wait_link_secret(client: &kube::Client, ns: &str, not: Option<&str>) -> Secret {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = secrets(client, ns)
            .get_opt(LINK_SECRET)
            .await
            .expect("get the link Secret");
        if let Some(secret) = &current
            && let Some(link) = text(secret, "link")
            && Some(link.as_str()) != not
        {
            return secret.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no link Secret (other than the old link) in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the share `handoff` of Secret `db`, key `password`, with its link kept in
/// [`LINK_SECRET`], and returns the shared resource.
async fn share_with_link_secret(client: &kube::Client, ns: &str, extra: serde_json::Value) {
    let mut spec = json!({
        "secretRef": {"name": "db", "key": "password"},
        "linkSecretRef": {"name": LINK_SECRET},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    create_share(client, ns, "handoff", spec).await;
}

/// Asserts that a status holds no link, metadata key or metadata link, and names the Secret.
/// Once the link Secret can be written: it gets the link the share recorded (the server saw
/// one share call only; `why` says so in the failure), `handoff` turns Ready=True, and the link
/// reveals `value`.
async fn expect_recorded_link_written(
    client: &kube::Client,
    ns: &str,
    server: &TestServer,
    why: &str,
    value: &str,
) {
    let written = wait_link_secret(client, ns, None).await;
    let link = text(&written, "link").expect("a link");
    wait_for(client, ns, "handoff", "Ready=True", |o| {
        ready(o).is_some_and(|(status, reason, _)| status == "True" && reason == "Shared")
    })
    .await;
    assert_eq!(calls(server, "share"), 1, "{why}");
    assert_eq!(reveal(server, &link, None).await.expect("reveal"), value);
}

/// Secret `db` holding `value`, a Secret of the user's own where the link Secret should go, and
/// `handoff` sharing `db` into it: `handoff` once it is Shared but Ready=False
/// LinkSecretNotWritten.
async fn shared_behind_a_secret_in_the_way(w: &World, value: &[u8]) -> OneTimeShare {
    w.secret("db", &[("password", value)]).await;
    w.secret(LINK_SECRET, &[("mine", b"keep me")]).await;
    share_with_link_secret(&w.client, &w.ns, json!({})).await;
    w.wait_for("handoff", "Ready=False LinkSecretNotWritten", |o| {
        phase(o) == "Shared" && ready_reason_is(o, "LinkSecretNotWritten")
    })
    .await
}

fn assert_no_link_in_status(obj: &OneTimeShare) {
    let status = obj.status.as_ref().expect("a status");
    assert_eq!(status.link, None);
    assert_eq!(status.metadata_key, None);
    assert_eq!(status.metadata_link, None);
    assert_eq!(status.link_secret_name.as_deref(), Some(LINK_SECRET));
}

fn live_keys(server: &TestServer) -> Vec<String> {
    server
        .live_receipts()
        .into_iter()
        .map(|r| r.metadata_key)
        .collect()
}

#[tokio::test]
async fn with_a_link_secret_the_link_is_in_that_secret_and_never_in_status_events_logs_or_kubectl_output()
 {
    let (client, ns) = setup("link-secret").await;
    let server = ots_server(Config::default());
    let operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"hunter2")]).await;
    share_with_link_secret(&client, &ns, json!({})).await;
    let shared = wait_shared(&client, &ns, "handoff").await;
    assert_no_link_in_status(&shared);
    wait_event(&client, &ns, "handoff", "Normal", "Shared").await;

    let secret = wait_link_secret(&client, &ns, None).await;
    let link = text(&secret, "link").expect("a link");
    let metadata_key = text(&secret, "metadataKey").expect("a metadata key");
    let metadata_link = text(&secret, "metadataLink").expect("a metadata link");
    assert_eq!(live_keys(&server), vec![metadata_key.clone()]);
    assert!(metadata_link.ends_with(&metadata_key), "{metadata_link}");
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("ots.dev/managed-by").map(String::as_str),
        Some("ots-operator")
    );
    let owner = &secret.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(owner.kind, "OneTimeShare");
    assert_eq!(Some(&owner.uid), shared.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));

    // Not in status, Events, or anything kubectl prints about the share.
    let secret_key = secret_key(&link);
    let capabilities = [link.as_str(), secret_key.as_str(), metadata_key.as_str()];
    let wide = run(kubectl(&["get", "ots", "-n", &ns, "-o", "wide"]));
    assert!(
        wide.contains("handoff") && wide.contains("Shared"),
        "{wide}"
    );
    let yaml = run(kubectl(&["get", "ots", "handoff", "-n", &ns, "-o", "yaml"]));
    let describe = run(kubectl(&["describe", "ots", "handoff", "-n", &ns]));
    let events = format!("{:?}", events(&client, &ns, "handoff").await);
    // The operator's log, at debug level for the operator's own crate.
    let logs = operator.logs();
    for (what, output) in [
        ("the operator's log", &logs),
        ("kubectl get -o wide", &wide),
        ("kubectl get -o yaml", &yaml),
        ("kubectl describe", &describe),
        ("Events", &events),
    ] {
        for capability in capabilities {
            assert!(
                !output.contains(capability),
                "{what} shows the link or its metadata key:\n{output}"
            );
        }
    }
    assert!(
        yaml.contains(&format!("linkSecretName: {LINK_SECRET}")),
        "{yaml}"
    );

    // The link in the Secret is the one that works.
    assert_eq!(
        reveal(&server, &link, None)
            .await
            .expect("the link reveals"),
        "hunter2"
    );
    let received = wait_for(&client, &ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    assert_no_link_in_status(&received);
    assert_eq!(calls(&server, "share"), 1);
}

#[tokio::test]
async fn a_deleted_or_edited_link_secret_is_rewritten_from_the_record_without_a_second_share() {
    let (client, ns) = setup("link-secret-rewrite").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"s3cret")]).await;
    share_with_link_secret(&client, &ns, json!({})).await;
    wait_shared(&client, &ns, "handoff").await;
    let first = wait_link_secret(&client, &ns, None).await;
    let link = text(&first, "link").expect("a link");

    secrets(&client, &ns)
        .delete(LINK_SECRET, &DeleteParams::default())
        .await
        .expect("delete the link Secret");
    let rewritten = wait_link_secret(&client, &ns, None).await;
    assert_ne!(rewritten.metadata.uid, first.metadata.uid, "a new Secret");
    assert_eq!(text(&rewritten, "link").as_deref(), Some(link.as_str()));
    assert_eq!(text(&rewritten, "metadataKey"), text(&first, "metadataKey"));

    secrets(&client, &ns)
        .patch(
            LINK_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"link": "https://evil.example/secret/x"}})),
        )
        .await
        .expect("edit the link Secret");
    let deadline = Instant::now() + WAIT;
    loop {
        let current = secrets(&client, &ns).get(LINK_SECRET).await.expect("get");
        if text(&current, "link").as_deref() == Some(link.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited link was not restored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(calls(&server, "share"), 1, "never shared twice");
    assert_eq!(calls(&server, "burn"), 0);
    assert_eq!(
        reveal(&server, &link, None).await.expect("reveal"),
        "s3cret"
    );
}

#[tokio::test]
async fn a_reissue_writes_the_new_link_into_the_link_secret_and_burns_the_old_one() {
    let (client, ns) = setup("link-secret-reissue").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"again")]).await;
    share_with_link_secret(&client, &ns, json!({})).await;
    wait_shared(&client, &ns, "handoff").await;
    let old = text(&wait_link_secret(&client, &ns, None).await, "link").expect("a link");

    shares(&client, &ns)
        .patch(
            "handoff",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {RESHARE_ANNOTATION: "1"}}})),
        )
        .await
        .expect("annotate");
    let new = text(&wait_link_secret(&client, &ns, Some(&old)).await, "link").expect("a link");
    let reissued = wait_for(&client, &ns, "handoff", "the reissue", |o| {
        o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("1")
    })
    .await;
    assert_no_link_in_status(&reissued);
    let note = wait_event(&client, &ns, "handoff", "Normal", "Reshared").await;
    assert!(note.contains(LINK_SECRET), "{note}");
    assert!(!note.contains(&secret_key(&new)), "{note}");
    assert_eq!(calls(&server, "burn"), 1);
    assert!(
        reveal(&server, &old, None).await.is_err(),
        "the old link is burned"
    );
    assert_eq!(reveal(&server, &new, None).await.expect("reveal"), "again");
}

#[tokio::test]
async fn deleting_a_link_secret_share_burns_the_recorded_link() {
    let (client, ns) = setup("link-secret-delete").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"burn-me")]).await;
    share_with_link_secret(&client, &ns, json!({})).await;
    wait_shared(&client, &ns, "handoff").await;
    let link = text(&wait_link_secret(&client, &ns, None).await, "link").expect("a link");
    assert_eq!(live_keys(&server).len(), 1);

    delete_share(&client, &ns, "handoff").await;
    wait_gone(&client, &ns, "handoff").await;
    assert_eq!(calls(&server, "burn"), 1);
    assert!(live_keys(&server).is_empty(), "no live secret is left");
    assert!(reveal(&server, &link, None).await.is_err());
}

#[tokio::test]
async fn a_secret_in_the_way_is_never_written_into_and_the_link_is_written_once_it_is_gone() {
    let w = World::start("link-secret-taken").await;
    let (client, ns, server) = (&w.client, &w.ns, &w.server);
    let blocked = shared_behind_a_secret_in_the_way(&w, b"patience").await;
    assert_no_link_in_status(&blocked);
    let (ready_status, _, message) = ready(&blocked).expect("a Ready condition");
    assert_eq!(ready_status, "False");
    assert!(
        message.contains("was not made by the ots-operator"),
        "{message}"
    );
    wait_event(client, ns, "handoff", "Warning", "LinkSecretNotWritten").await;
    let untouched = secrets(client, ns).get(LINK_SECRET).await.expect("get");
    assert_eq!(text(&untouched, "mine").as_deref(), Some("keep me"));
    assert_eq!(text(&untouched, "link"), None);

    secrets(client, ns)
        .delete(LINK_SECRET, &DeleteParams::default())
        .await
        .expect("delete the Secret in the way");
    expect_recorded_link_written(
        client,
        ns,
        server,
        "the recorded link, not a new one",
        "patience",
    )
    .await;
}

#[tokio::test]
async fn link_secret_ref_is_immutable_and_never_names_a_secret_the_share_reads() {
    let (client, ns) = setup("link-secret-cel").await;
    install_crd();
    let api = shares(&client, &ns);
    let refused = |spec: serde_json::Value| {
        let api = api.clone();
        async move {
            let share: OneTimeShare = serde_json::from_value(json!({
                "apiVersion": "ots.dev/v1alpha1", "kind": "OneTimeShare",
                "metadata": {"name": "refused"}, "spec": spec,
            }))
            .expect("a OneTimeShare");
            match api.create(&Default::default(), &share).await {
                Err(kube::Error::Api(e)) => e.message,
                other => panic!("accepted: {other:?}"),
            }
        }
    };
    let message = refused(json!({
        "secretRef": {"name": "db"}, "linkSecretRef": {"name": "db"},
    }))
    .await;
    assert!(
        message.contains("linkSecretRef must name a Secret of its own"),
        "{message}"
    );
    let message = refused(json!({
        "secretRef": {"name": "db"},
        "passphraseSecretRef": {"name": "pp", "key": "k"},
        "linkSecretRef": {"name": "pp"},
    }))
    .await;
    assert!(
        message.contains("linkSecretRef must name a Secret of its own"),
        "{message}"
    );

    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db"}, "linkSecretRef": {"name": LINK_SECRET}}),
    )
    .await;
    for patch in [
        json!({"spec": {"linkSecretRef": {"name": "elsewhere"}}}),
        json!({"spec": {"linkSecretRef": null}}),
    ] {
        let error = api
            .patch("handoff", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("linkSecretRef cannot change");
        assert!(
            error.to_string().contains("linkSecretRef is immutable"),
            "{error}"
        );
    }
}

/// Applies (or, with `delete`, deletes) a ValidatingAdmissionPolicy that refuses every write of
/// the link Secret in `ns`, as an administrator who withholds Secret writes from the operator would.
fn refuse_link_secret_writes(ns: &str, delete: bool) {
    let name = format!("refuse-link-secret-{ns}");
    let manifest = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["secrets"]
  validations:
  - expression: "object.metadata.name != '{LINK_SECRET}'"
    message: "writes of this Secret are not allowed"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    );
    let path = std::env::temp_dir().join(format!("{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, manifest).expect("write the policy");
    let path = path.to_string_lossy().into_owned();
    if delete {
        run(kubectl(&["delete", "-f", &path]));
    } else {
        run(kubectl(&["apply", "-f", &path]));
    }
}

#[tokio::test]
async fn a_refused_link_secret_write_loses_no_link_and_is_retried_without_a_second_share() {
    let (client, ns) = setup("link-secret-refused").await;
    refuse_link_secret_writes(&ns, false);
    // The policy takes effect within moments: wait until it refuses a write.
    let deadline = Instant::now() + WAIT;
    loop {
        let probe: Secret =
            serde_json::from_value(json!({"metadata": {"name": LINK_SECRET}})).expect("a Secret");
        match secrets(&client, &ns)
            .create(&Default::default(), &probe)
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 403 => break,
            Ok(_) => {
                secrets(&client, &ns)
                    .delete(LINK_SECRET, &DeleteParams::default())
                    .await
                    .expect("delete the probe");
            }
            Err(e) => panic!("unexpected: {e}"),
        }
        assert!(Instant::now() < deadline, "the policy never took effect");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"refused")]).await;
    share_with_link_secret(&client, &ns, json!({})).await;
    let blocked = wait_for(
        &client,
        &ns,
        "handoff",
        "Ready=False LinkSecretNotWritten",
        |o| phase(o) == "Shared" && ready_reason_is(o, "LinkSecretNotWritten"),
    )
    .await;
    assert_no_link_in_status(&blocked);
    let (_, _, message) = ready(&blocked).expect("Ready");
    assert!(message.contains("secretWrites.enabled"), "{message}");
    let note = wait_event(&client, &ns, "handoff", "Warning", "LinkSecretNotWritten").await;
    assert!(note.contains("not shared again"), "{note}");
    assert_eq!(calls(&server, "share"), 1);

    refuse_link_secret_writes(&ns, true);
    expect_recorded_link_written(
        &client,
        &ns,
        &server,
        "the recorded link, never a second share",
        "refused",
    )
    .await;
}

#[tokio::test]
async fn link_checks_go_on_while_the_link_secret_cannot_be_written() {
    let w = World::start("link-secret-blocked-tracking").await;
    let (client, ns, server) = (&w.client, &w.ns, &w.server);
    let blocked = shared_behind_a_secret_in_the_way(&w, b"tracked").await;

    // The link is in the operator's record (records live beside the shares in these tests).
    let uid = blocked.metadata.uid.clone().expect("a uid");
    let record = secrets(client, ns)
        .get(&format!("ots-share-{uid}"))
        .await
        .expect("the record");
    let record: serde_json::Value =
        serde_json::from_str(&text(&record, "record").expect("record data")).expect("json");
    let link = record["link"].as_str().expect("a recorded link").to_owned();
    assert_eq!(
        reveal(server, &link, None).await.expect("reveal"),
        "tracked"
    );
    let received = wait_for(client, ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    assert_no_link_in_status(&received);
    assert_eq!(calls(server, "share"), 1);
    let untouched = secrets(client, ns).get(LINK_SECRET).await.expect("get");
    assert_eq!(text(&untouched, "link"), None);
}

#[tokio::test]
async fn a_changed_secret_and_an_expired_link_put_the_new_link_into_the_same_link_secret() {
    let (client, ns) = setup("link-secret-renewals").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"first")]).await;
    share_with_link_secret(
        &client,
        &ns,
        json!({"ttl": "60s", "onSecretChange": "Reshare", "onExpiry": "Reshare"}),
    )
    .await;
    wait_shared(&client, &ns, "handoff").await;
    let first = text(&wait_link_secret(&client, &ns, None).await, "link").expect("a link");

    // onSecretChange: Reshare burns the old link; the new value's link replaces it in the Secret.
    update_secret(&client, &ns, "db", &[("password", b"second")]).await;
    let second = text(&wait_link_secret(&client, &ns, Some(&first)).await, "link").expect("link");
    assert!(
        reveal(&server, &first, None).await.is_err(),
        "the old link is burned"
    );

    // onExpiry: Reshare: the expired link's successor replaces it in the Secret.
    server.advance_clock(Duration::from_secs(120));
    let third = text(&wait_link_secret(&client, &ns, Some(&second)).await, "link").expect("link");
    let note = wait_event(&client, &ns, "handoff", "Normal", "Renewed").await;
    assert!(note.contains(LINK_SECRET), "{note}");
    assert!(!note.contains(&secret_key(&third)), "{note}");
    let renewed = wait_shared(&client, &ns, "handoff").await;
    assert_no_link_in_status(&renewed);
    assert_eq!(calls(&server, "share"), 3);
    assert_eq!(
        reveal(&server, &third, None).await.expect("reveal"),
        "second"
    );
}
