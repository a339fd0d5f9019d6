//! OtsNotification and ClusterOtsNotification on a real apiserver: their CRDs apply without a
//! warning, a good object is admitted, and CEL and the enums refuse bad input at apply time
//! (an unknown format or event, a malformed or out-of-range duration, a bad Secret name), with a
//! message that says what is wrong. `kubectl explain` reads the field docs.

mod support;

use kube::api::{DynamicObject, PostParams};
use kube::core::ApiResource;
use kube::{Api, Client};
use ots_operator::resource::{ClusterOtsNotification, OtsNotification};
use serde_json::{Value, json};
use support::{cluster, tools};

fn apply_crd(crd: &str) {
    // The tests run side by side and apply the same CRDs: two client-side applies of one new
    // object race (both see it missing, one create fails), so they take turns.
    static APPLYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = APPLYING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tools::kubectl(&["apply", "-f", &format!("crds/{crd}.yaml")])
        .output()
        .expect("run kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply {crd}: {stderr}");
    assert!(!stderr.contains("Warning"), "apply {crd} warned: {stderr}");
    let established = tools::kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        &format!("crd/{crd}"),
    ])
    .output()
    .expect("run kubectl");
    assert!(established.status.success(), "{crd} is established");
}

/// Creates `spec` as an object of `api`'s kind; the apiserver's refusal message, if any.
async fn create(api: &Api<DynamicObject>, kind: &str, name: &str, spec: Value) -> Option<String> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("an object");
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(other) => panic!("create {kind} {name}: {other}"),
    }
}

fn refused(message: Option<String>, expected: &str) {
    let message = message.expect("the apiserver admitted a bad object");
    assert!(
        message.contains(expected),
        "expected {expected:?} in: {message}"
    );
}

#[tokio::test]
async fn notification_kinds_admit_good_objects_and_refuse_bad_ones_at_apply() {
    cluster::control_plane();
    apply_crd("otsnotifications.ots.dev");
    apply_crd("clusterotsnotifications.ots.dev");
    let client: Client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "notification-cel").await;
    let namespaced: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<OtsNotification>(&()),
    );
    let cluster_wide: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<ClusterOtsNotification>(&()),
    );

    // Good objects: every field set, and the least that works.
    let full = json!({
        "endpointSecretRef": {"name": "team-a-webhook"},
        "format": "Slack",
        "events": ["Received", "Expired", "ExpiringUnread"],
        "expiringUnreadLeadTime": "24h",
        "shareSelector": {"matchLabels": {"team": "a"}},
        "retryFor": "1h",
        "suspend": false
    });
    assert_eq!(
        create(&namespaced, "OtsNotification", "full", full).await,
        None
    );
    let least = json!({"endpointSecretRef": {"name": "hook"}});
    assert_eq!(
        create(&namespaced, "OtsNotification", "least", least.clone()).await,
        None
    );
    let platform = json!({
        "endpointSecretRef": {"name": "platform-hook"},
        "namespaceSelector": {"matchLabels": {"ots.dev/notify": "true"}},
        "format": "MicrosoftTeams"
    });
    let name = format!("{ns}-platform");
    assert_eq!(
        create(&cluster_wide, "ClusterOtsNotification", &name, platform).await,
        None
    );

    // Bad input, refused with a message naming the problem.
    let with = |field: &str, value: Value| {
        let mut spec = least.clone();
        spec[field] = value;
        spec
    };
    let cases = [
        ("format", json!("Email"), "Unsupported value: \"Email\""),
        ("events", json!(["Opened"]), "Unsupported value: \"Opened\""),
        ("events", json!(["Received", "Received"]), "Duplicate value"),
        ("retryFor", json!("25h"), "retryFor must be"),
        ("retryFor", json!("30s"), "retryFor must be"),
        ("retryFor", json!("1x"), "retryFor must be"),
        (
            "expiringUnreadLeadTime",
            json!("8d"),
            "expiringUnreadLeadTime must be",
        ),
        (
            "expiringUnreadLeadTime",
            json!("soon"),
            "expiringUnreadLeadTime must be",
        ),
        (
            "endpointSecretRef",
            json!({"name": "Not_A_Secret"}),
            "name must be a valid Secret name",
        ),
        ("endpointSecretRef", json!({}), "Required value"),
    ];
    for (i, (field, value, expected)) in cases.into_iter().enumerate() {
        let spec = with(field, value);
        refused(
            create(
                &namespaced,
                "OtsNotification",
                &format!("bad-{i}"),
                spec.clone(),
            )
            .await,
            expected,
        );
        refused(
            create(
                &cluster_wide,
                "ClusterOtsNotification",
                &format!("{ns}-bad-{i}"),
                spec,
            )
            .await,
            expected,
        );
    }
    // The endpoint is a Secret reference: there is no field for a URL in the spec.
    let url_in_spec = with("address", json!("https://hooks.slack.com/services/T/B/x"));
    let admitted = create(&namespaced, "OtsNotification", "url-in-spec", url_in_spec).await;
    let stored = namespaced.get("url-in-spec").await;
    if admitted.is_none() {
        let stored = stored.expect("the admitted object");
        assert!(
            stored.data["spec"].get("address").is_none(),
            "an unknown field was kept: {:?}",
            stored.data["spec"]
        );
    }

    // kubectl explain reads the doc comments.
    let explain = tools::kubectl(&["explain", "otsnotification.spec.endpointSecretRef"])
        .output()
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success());
    assert!(
        text.contains("signingKey") && text.contains("--allow-notification-url"),
        "{text}"
    );
}

#[tokio::test]
async fn a_share_opts_out_or_names_its_notifications_and_cel_refuses_both_at_once() {
    cluster::control_plane();
    apply_crd("onetimeshares.ots.dev");
    apply_crd("clusterotsnotifications.ots.dev");
    let client: Client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "share-notifications-cel").await;
    let shares: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<ots_operator::resource::OneTimeShare>(&()),
    );
    let spec = |notifications: Value| json!({"secretRef": {"name": "db", "key": "password"}, "notifications": notifications});

    // Good: opt out, name some, opt out explicitly false with names, and nothing at all.
    for (name, notifications) in [
        ("opt-out", json!({"optOut": true})),
        (
            "named",
            json!({"notificationRefs": [{"name": "team-hook"}, {"name": "audit.v2"}]}),
        ),
        (
            "named-not-opted-out",
            json!({"optOut": false, "notificationRefs": [{"name": "team-hook"}]}),
        ),
        ("empty", json!({})),
    ] {
        assert_eq!(
            create(&shares, "OneTimeShare", name, spec(notifications)).await,
            None,
            "{name}"
        );
    }
    let stored = shares.get("opt-out").await.expect("the admitted share");
    assert_eq!(stored.data["spec"]["notifications"]["optOut"], true);

    // Bad: both at once, too many, a name that is no object name, a duplicate, no name.
    let nine: Vec<Value> = (0..9).map(|i| json!({"name": format!("n{i}")})).collect();
    let cases = [
        (
            json!({"optOut": true, "notificationRefs": [{"name": "team-hook"}]}),
            "optOut and notificationRefs are mutually exclusive",
        ),
        (json!({"notificationRefs": nine}), "Too many"),
        (
            json!({"notificationRefs": [{"name": "Not_A_Name"}]}),
            "notificationRefs[].name must be a valid object name",
        ),
        (
            json!({"notificationRefs": [{"name": "a"}, {"name": "a"}]}),
            "Duplicate value",
        ),
        (json!({"notificationRefs": [{}]}), "Required value"),
    ];
    for (i, (notifications, expected)) in cases.into_iter().enumerate() {
        refused(
            create(
                &shares,
                "OneTimeShare",
                &format!("bad-{i}"),
                spec(notifications),
            )
            .await,
            expected,
        );
    }

    // The platform decides whether a tenant's optOut silences its notification.
    let cluster_wide: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<ClusterOtsNotification>(&()),
    );
    let name = format!("{ns}-honors");
    assert_eq!(
        create(
            &cluster_wide,
            "ClusterOtsNotification",
            &name,
            json!({"endpointSecretRef": {"name": "hook"}, "honorOptOut": true}),
        )
        .await,
        None
    );
    let stored = cluster_wide.get(&name).await.expect("admitted");
    assert_eq!(stored.data["spec"]["honorOptOut"], true);

    // kubectl explain tells what the field does (once the apiserver publishes the CRD's
    // OpenAPI, which follows its establishment by a moment).
    let started = std::time::Instant::now();
    let text = loop {
        let explain = tools::kubectl(&["explain", "onetimeshare.spec.notifications"])
            .output()
            .expect("run kubectl");
        if explain.status.success() {
            break String::from_utf8_lossy(&explain.stdout).into_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "kubectl explain failed: {}",
            String::from_utf8_lossy(&explain.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        text.contains("optOut") && text.contains("notificationRefs"),
        "{text}"
    );
}
