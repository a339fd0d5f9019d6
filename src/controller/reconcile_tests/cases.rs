//! What a user relies on from one reconcile at a time, proven without a control plane.

use super::{Call, Harness, ready};
use crate::error::{Error, Reason};
use crate::resource::{BURN_ANNOTATION, FINALIZER, OneTimeShare, Phase, RESHARE_ANNOTATION};
use crate::runtime::throttle::Turn;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spec(extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"secretRef": {"name": "db", "key": "password"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// Creates `name`, lets the first reconcile add the finalizer and returns the object then.
async fn created(h: &Harness, name: &str, extra: serde_json::Value) -> Arc<OneTimeShare> {
    let obj = h.create(name, spec(extra));
    h.reconcile(&obj).await;
    h.current(name)
}

/// Creates `name` and reconciles it until it is shared.
async fn shared(h: &Harness, name: &str, extra: serde_json::Value) -> Arc<OneTimeShare> {
    let obj = created(h, name, extra).await;
    h.reconcile(&obj).await;
    let current = h.current(name);
    assert_eq!(h.status(name).phase, Phase::Shared, "{:?}", h.status(name));
    current
}

/// Marks `name` deleted (as the API server does when a delete meets a finalizer).
fn delete(h: &Harness, name: &str) -> Arc<OneTimeShare> {
    h.edit(name, |share| {
        share.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    })
}

/// Makes the link of `name` due for a state check now.
/// Makes the link's check due now, as its schedule or the batch tracker's wake-up would.
fn check_now(h: &Harness, name: &str) {
    let uid = format!("uid-{name}");
    h.ctx.memory.reset_schedule(&uid);
    h.ctx.memory.batch_woken(&uid);
}

fn position(calls: &[Call], what: impl Fn(&Call) -> bool) -> Option<usize> {
    calls.iter().position(what)
}

#[tokio::test]
async fn a_new_share_gets_its_finalizer_before_any_other_call() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    let obj = h.create("s", spec(json!({})));

    assert_eq!(h.reconcile(&obj).await, Action::await_change());
    let calls = h.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "PATCH");
    assert!(
        calls[0].path.ends_with("/namespaces/team/onetimeshares/s"),
        "{calls:#?}"
    );
    assert!(calls[0].body.to_string().contains(FINALIZER), "{calls:#?}");
    assert_eq!(h.current("s").finalizers(), [FINALIZER]);
    assert_eq!(h.ots_shares(), 0, "nothing is shared before the finalizer");

    // The finalizer's own watch event shares; the record is written before status names the link.
    h.reconcile(&h.current("s")).await;
    assert_eq!(h.ots_shares(), 1);
    assert!(h.has_record("s"));
    let calls = h.calls();
    let record = position(&calls, |c| {
        c.method == "PATCH" && c.path.contains("/namespaces/ots-system/secrets/")
    });
    let status = position(&calls, Call::is_status_write);
    assert!(
        record.is_some() && record < status,
        "record before status: {calls:#?}"
    );
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared);
    assert!(status.link.is_some_and(|l| l.contains("/secret/")));
    assert_eq!(
        ready(&h.status("s")),
        Some(("True".into(), "Shared".into()))
    );
}

#[tokio::test]
async fn a_stale_cache_after_a_share_never_shares_twice() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    let before_share = created(&h, "s", json!({})).await;
    h.reconcile(&before_share).await;
    assert_eq!(h.ots_shares(), 1);

    // The watch cache has not seen the status write yet: the same linkless object comes back.
    for _ in 0..3 {
        h.reconcile(&before_share).await;
    }
    assert_eq!(h.ots_shares(), 1, "{:#?}", h.ots.requests());
    assert_eq!(h.ots.live_receipts().len(), 1);
    // And once the cache catches up, the link it shows is the one tracked.
    h.reconcile(&h.current("s")).await;
    assert_eq!(h.ots_shares(), 1);
    assert_eq!(
        h.status("s").metadata_key.as_deref(),
        Some(h.ots.live_receipts()[0].metadata_key.as_str())
    );
}

#[tokio::test]
async fn a_status_write_that_fails_after_a_share_is_written_again_without_a_second_share() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    let obj = created(&h, "s", json!({})).await;
    // Every attempt of the status write fails (it is retried 4 times).
    h.api().failing_status_writes = 4;
    h.reconcile(&obj).await;
    assert_eq!(h.ots_shares(), 1);
    assert!(h.has_record("s"), "the record is written before status");
    assert_eq!(h.status("s").link, None, "the status write was lost");
    assert_eq!(
        h.metric(r#"ots_operator_reconciles_total{result="error",reason="KubernetesError"}"#),
        Some(1.0)
    );

    // The cache shows no link; the next reconcile writes the link it made, and shares nothing.
    h.reconcile(&obj).await;
    assert_eq!(h.ots_shares(), 1, "{:#?}", h.ots.requests());
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared);
    assert_eq!(
        status.metadata_key.as_deref(),
        Some(h.ots.live_receipts()[0].metadata_key.as_str())
    );
}

#[tokio::test]
async fn an_error_report_whose_status_write_failed_is_written_on_a_retry() {
    let h = Harness::new().await;
    let obj = h.create("s", spec(json!({})));
    let api: Api<OneTimeShare> = h.ctx.shares("team");
    let bad = || Error::InvalidSpec("the spec cannot work".into());
    // Every attempt of the report's status write fails (it is retried 4 times).
    h.api().failing_status_writes = 4;
    let action = super::super::settle(&obj, &api, Err(bad()), Instant::now(), &h.ctx).await;
    assert_eq!(
        h.status("s").phase,
        Phase::Pending,
        "the report was not written"
    );
    // An error that waits for a change of the resource is tried again all the same: nobody
    // would otherwise learn of it from status.
    assert_ne!(action, Action::await_change());

    let action = super::super::settle(&obj, &api, Err(bad()), Instant::now(), &h.ctx).await;
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(ready(&status), Some(("False".into(), "InvalidSpec".into())));
    assert_eq!(
        action,
        Action::await_change(),
        "written: now it waits for a change"
    );
}

#[tokio::test]
async fn an_error_writes_ready_false_once() {
    let h = Harness::new().await;
    let obj = created(&h, "s", json!({})).await;
    h.clear_calls();

    let action = h.reconcile(&obj).await;
    assert_ne!(
        action,
        Action::await_change(),
        "a missing Secret is re-checked"
    );
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!(
        ready(&status),
        Some(("False".into(), "SecretNotFound".into()))
    );

    // The stale object and the fresh one fail the same way: nothing new to write or tell.
    h.reconcile(&obj).await;
    h.reconcile(&h.current("s")).await;
    let calls = h.calls();
    assert_eq!(
        calls.iter().filter(|c| c.is_status_write()).count(),
        1,
        "{calls:#?}"
    );
    assert_eq!(
        h.events(),
        [("Warning".to_owned(), "SecretNotFound".to_owned())]
    );
    assert_eq!(
        h.metric(r#"ots_operator_reconciles_total{result="error",reason="SecretNotFound"}"#),
        Some(3.0)
    );
    assert_eq!(h.ots_shares(), 0);
}

#[tokio::test]
async fn deleting_a_keep_share_makes_no_ots_call() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    // Keep from the start: no finalizer, shared at once.
    let keep = h.create("keep", spec(json!({"deletionPolicy": "Keep"})));
    h.reconcile(&keep).await;
    assert!(h.current("keep").finalizers().is_empty());
    assert_eq!(h.status("keep").phase, Phase::Shared);
    // Burn at first (finalizer), then switched to Keep before the deletion.
    let switched = shared(&h, "switched", json!({})).await;
    assert_eq!(switched.finalizers(), [FINALIZER]);
    h.edit("switched", |s| {
        s.spec.deletion_policy = crate::resource::DeletionPolicy::Keep
    });
    h.ots.reset_stats();
    h.clear_calls();

    assert_eq!(
        h.reconcile(&delete(&h, "keep")).await,
        Action::await_change()
    );
    assert!(h.calls().is_empty(), "{:#?}", h.calls());
    h.reconcile(&delete(&h, "switched")).await;
    assert!(h.current("switched").finalizers().is_empty());
    assert!(
        !h.has_record("switched"),
        "the record goes with the resource"
    );

    assert!(h.ots.requests().is_empty(), "{:#?}", h.ots.requests());
    assert_eq!(h.ots.live_receipts().len(), 2, "both links stay valid");
}

/// Every reason, sorted by where a user meets it. The match has no wildcard: a new reason does
/// not compile until it is placed here (and so covered by the tests below).
fn is_error_reason(reason: Reason) -> bool {
    match reason {
        Reason::Shared
        | Reason::Received
        | Reason::Burned
        | Reason::Expired
        | Reason::Reshared
        | Reason::TtlClamped
        | Reason::BurnFailed
        | Reason::Generated
        | Reason::Renewed
        | Reason::Verified
        | Reason::SecretNotUsable => false,
        Reason::TtlNotAllowed
        | Reason::AnonymousNotAllowed
        | Reason::SecretNotFound
        | Reason::KeyNotFound
        | Reason::SecretEmpty
        | Reason::SecretTooLarge
        | Reason::SecretNotText
        | Reason::PassphraseNotFound
        | Reason::InvalidPassphrase
        | Reason::CredentialsNotFound
        | Reason::ServerNotAllowed
        | Reason::InvalidSpec
        | Reason::Unauthorized
        | Reason::ServerRejected
        | Reason::RateLimited
        | Reason::ServerUnavailable
        | Reason::ServerProtocolError
        | Reason::KubernetesError
        | Reason::StatusTampered
        | Reason::TooManyShares
        | Reason::RecordFailed
        | Reason::TlsUntrusted
        | Reason::SecretNotOwned
        | Reason::SecretWriteForbidden
        | Reason::GenerateFailed
        | Reason::LinkSecretNotWritten
        | Reason::ReissueRefused
        | Reason::ServerNotFound
        | Reason::PolicyViolation
        | Reason::ShareDomainRefused
        | Reason::BurnRefused => true,
    }
}

#[tokio::test]
async fn every_error_reason_reaches_the_condition_the_event_and_the_metric() {
    let h = Harness::new().await;
    let mut reached = std::collections::BTreeSet::new();
    for (i, error) in crate::error::examples().into_iter().enumerate() {
        let name = format!("e{i}");
        let obj = h.create(&name, spec(json!({})));
        let reason = error.reason();
        let api: Api<OneTimeShare> = h.ctx.shares("team");
        let described = format!("{error:?}");
        super::super::settle(&obj, &api, Err(error), Instant::now(), &h.ctx).await;

        let status = h.status(&name);
        assert_eq!(
            ready(&status),
            Some(("False".into(), reason.as_str().into())),
            "{described}"
        );
        let events = h.api().events.clone();
        let last = events.last().expect("an Event");
        assert_eq!(last["type"], "Warning", "{described}");
        assert_eq!(last["reason"], reason.as_str(), "{described}");
        assert_eq!(last["regarding"]["name"], name.as_str(), "{described}");
        let series =
            format!(r#"ots_operator_reconciles_total{{result="error",reason="{reason}"}}"#);
        assert!(h.metric(&series).is_some_and(|n| n >= 1.0), "{series}");
        reached.insert(reason.as_str());
    }
    let expected: Vec<_> = Reason::ALL
        .iter()
        .filter(|r| is_error_reason(**r))
        .map(|r| r.as_str())
        .collect();
    for reason in expected {
        assert!(reached.contains(reason), "no error shows {reason}");
    }
}

#[tokio::test]
async fn without_the_admission_guard_a_secret_error_shows_secret_not_usable_everywhere() {
    let h = Harness::with(ots_testserver::Config::default(), |c| {
        c.admission_guard = false
    })
    .await;
    let obj = created(&h, "s", json!({})).await;
    h.reconcile(&obj).await;
    assert_eq!(
        ready(&h.status("s")),
        Some(("False".into(), "SecretNotUsable".into()))
    );
    assert_eq!(
        h.events(),
        [("Warning".to_owned(), "SecretNotUsable".to_owned())]
    );
    assert_eq!(
        h.metric(r#"ots_operator_reconciles_total{result="error",reason="SecretNotFound"}"#),
        Some(1.0),
        "the metric keeps the precise reason (it names no Secret)"
    );
}

#[tokio::test]
async fn each_step_of_a_links_life_reaches_its_condition_and_event() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);

    // Shared, with the server's clamp of 30d to its anonymous 7d in the condition and an Event.
    shared(&h, "clamped", json!({"ttl": "30d"})).await;
    let status = h.status("clamped");
    assert_eq!(ready(&status), Some(("True".into(), "Shared".into())));
    assert_eq!(status.ttl_seconds, Some(7 * 86_400));
    let message = &status.conditions[0].message;
    assert!(message.contains("7d instead of the 30d"), "{message}");
    assert_eq!(
        h.events(),
        [
            ("Normal".to_owned(), "Shared".to_owned()),
            ("Warning".to_owned(), "TtlClamped".to_owned())
        ]
    );

    // Received: the recipient opens the link.
    let opened = shared(&h, "opened", json!({})).await;
    open(&h, "opened").await;
    check_now(&h, "opened");
    h.reconcile(&opened).await;
    assert_eq!(
        ready(&h.status("opened")),
        Some(("True".into(), "Received".into()))
    );

    // Reshared: a new ots.dev/reshare value burns the live link and shares anew.
    shared(&h, "again", json!({})).await;
    let again = h.edit("again", |s| {
        s.annotations_mut()
            .insert(RESHARE_ANNOTATION.to_owned(), "1".to_owned());
    });
    h.reconcile(&again).await;
    assert_eq!(h.status("again").reshare_token.as_deref(), Some("1"));

    // Burned: deleting an unread share burns it.
    shared(&h, "burned", json!({})).await;
    h.reconcile(&delete(&h, "burned")).await;
    assert!(h.current("burned").finalizers().is_empty());

    // Expired: the server's clock passes the link's lifetime.
    let expiring = shared(&h, "expiring", json!({"ttl": "1h"})).await;
    h.ots.advance_clock(Duration::from_secs(2 * 3600));
    check_now(&h, "expiring");
    h.reconcile(&expiring).await;
    assert_eq!(
        ready(&h.status("expiring")),
        Some(("False".into(), "Expired".into()))
    );

    let reasons: Vec<String> = h.events().into_iter().map(|(_, r)| r).collect();
    for reason in ["Received", "Reshared", "Burned", "Expired"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
}

#[tokio::test]
async fn a_burn_that_cannot_be_done_releases_the_resource_with_burn_failed() {
    let h = Harness::with(ots_testserver::Config::default(), |c| {
        c.burn_timeout = Duration::ZERO
    })
    .await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "s", json!({})).await;
    h.ots.set_faults(ots_testserver::Faults {
        outage: true,
        ..ots_testserver::Faults::default()
    });
    h.reconcile(&delete(&h, "s")).await;
    assert!(h.current("s").finalizers().is_empty());
    assert!(
        h.events()
            .contains(&("Warning".to_owned(), "BurnFailed".to_owned())),
        "{:?}",
        h.events()
    );
    assert_eq!(
        h.metric(r#"ots_operator_burns_total{outcome="gave_up"}"#),
        Some(1.0)
    );
}

#[test]
fn error_examples_cover_every_error_variant_reason() {
    let reasons: std::collections::HashSet<_> =
        crate::error::examples().iter().map(Error::reason).collect();
    for reason in Reason::ALL.into_iter().filter(|r| is_error_reason(*r)) {
        assert!(reasons.contains(&reason), "{reason}");
    }
}

/// The Ready condition of a status; fails the test without one.
fn ready_condition(status: &crate::resource::OneTimeShareStatus) -> &Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition")
}

#[tokio::test]
async fn a_reshare_value_too_long_to_act_on_is_refused_and_never_copied() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "s", json!({})).await;
    let huge = "r".repeat(200_000);
    let obj = h.edit("s", |s| {
        s.annotations_mut()
            .insert(RESHARE_ANNOTATION.to_owned(), huge.clone());
    });
    h.reconcile(&obj).await;

    assert_eq!(h.ots_shares(), 1, "nothing was reissued");
    let status = h.status("s");
    assert_eq!(
        status.phase,
        Phase::Shared,
        "the link is still live and tracked"
    );
    assert_eq!(status.reshare_token, None);
    let ready = ready_condition(&status);
    assert_eq!(ready.reason, "ReissueRefused");
    assert!(
        ready
            .message
            .contains("longer than the 63 characters the operator acts on"),
        "{}",
        ready.message
    );
    assert!(
        h.events()
            .contains(&("Warning".to_owned(), "ReissueRefused".to_owned())),
        "{:?}",
        h.events()
    );
    let stored = h.record_text("s");
    assert!(stored.contains("uid-s"), "the record exists: {stored}");
    assert!(
        !stored.contains("rrrrrrrrrr"),
        "the record holds no part of it"
    );
    let written = serde_json::to_string(&h.status("s")).unwrap_or_default();
    assert!(
        !written.contains("rrrrrrrrrr"),
        "status holds no part of it"
    );
}

#[tokio::test]
async fn a_burn_value_too_long_to_act_on_is_refused_and_never_copied() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "s", json!({})).await;
    let huge = "b".repeat(200_000);
    let obj = h.edit("s", |s| {
        s.annotations_mut()
            .insert(BURN_ANNOTATION.to_owned(), huge.clone());
    });
    h.reconcile(&obj).await;

    let burns = h
        .ots
        .requests()
        .iter()
        .filter(|r| r.operation == "burn")
        .count();
    assert_eq!(burns, 0, "nothing was burned");
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared, "the link is live and tracked");
    assert_eq!(status.burn_token, None);
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled says why nothing was burned");
    assert_eq!(stalled.reason, "BurnRefused");
    assert!(
        stalled
            .message
            .contains("ots.dev/burn annotation's value is longer than the 63 characters"),
        "{}",
        stalled.message
    );
    assert!(
        h.events()
            .contains(&("Warning".to_owned(), "BurnRefused".to_owned())),
        "{:?}",
        h.events()
    );
    let stored = h.record_text("s");
    assert!(
        !stored.contains("bbbbbbbbbb"),
        "the record holds no part of it"
    );
    let written = serde_json::to_string(&h.status("s")).unwrap_or_default();
    assert!(
        !written.contains("bbbbbbbbbb"),
        "status holds no part of it"
    );
    // A value the operator acts on burns the link.
    let obj = h.edit("s", |s| {
        s.annotations_mut()
            .insert(BURN_ANNOTATION.to_owned(), "b".repeat(63));
    });
    h.reconcile(&obj).await;
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Burned);
    assert_eq!(status.burn_token, Some("b".repeat(63)));
    assert!(
        !status.conditions.iter().any(|c| c.reason == "BurnRefused"),
        "{:?}",
        status.conditions
    );
}

#[tokio::test]
async fn a_burn_value_on_a_share_with_no_link_is_reported_and_burns_nothing() {
    let h = Harness::new().await;
    h.create("s", spec(json!({})));
    let obj = h.edit("s", |s| {
        s.annotations_mut()
            .insert(BURN_ANNOTATION.to_owned(), "b1".to_owned());
    });
    h.reconcile(&obj).await;
    // The first reconcile may only add the finalizer.
    h.reconcile(&h.current("s")).await;
    let status = h.status("s");
    assert!(!status.phase.has_link(), "{:?}", status.phase);
    assert_eq!(
        status.burn_token.as_deref(),
        Some("b1"),
        "the value is reported"
    );
    let burns = h
        .ots
        .requests()
        .iter()
        .filter(|r| r.operation == "burn")
        .count();
    assert_eq!(burns, 0);
    // Once the Secret exists the share is made, and the value counts as acted on.
    h.put_secret("db", &[("password", "hunter2")]);
    h.reconcile(&h.current("s")).await;
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared);
    assert_eq!(status.burn_token.as_deref(), Some("b1"));
    h.reconcile(&h.current("s")).await;
    assert_eq!(h.status("s").phase, Phase::Shared, "not burned");
}

#[tokio::test]
async fn a_burn_the_server_cannot_do_yet_keeps_the_link_and_says_it_is_retried() {
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "s", json!({})).await;
    h.ots.set_faults(ots_testserver::Faults {
        outage: true,
        ..ots_testserver::Faults::default()
    });
    let obj = h.edit("s", |s| {
        s.annotations_mut()
            .insert(BURN_ANNOTATION.to_owned(), "b1".to_owned());
    });
    h.reconcile(&obj).await;
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared, "the link is still live");
    assert_eq!(status.burn_token, None, "not acted on yet");
    let reconciling = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .expect("Reconciling says the burn is still to come");
    assert!(
        reconciling
            .message
            .contains("the burn asked for (ots.dev/burn) is not done yet"),
        "{}",
        reconciling.message
    );

    // Once the server answers, the burn is done and the share is Burned.
    h.ots.set_faults(ots_testserver::Faults::default());
    h.reconcile(&h.current("s")).await;
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Burned);
    assert_eq!(status.burn_token.as_deref(), Some("b1"));
    assert!(
        !status.conditions.iter().any(|c| c.type_ == "Reconciling"),
        "{:?}",
        status.conditions
    );
}

#[tokio::test]
async fn reissues_beyond_the_hourly_limit_wait_while_the_link_is_still_tracked() {
    let h = Harness::with(ots_testserver::Config::default(), |c| {
        c.max_reissues_per_hour = 2
    })
    .await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "s", json!({})).await;
    let reissue = |token: &'static str| {
        h.edit("s", |s| {
            s.annotations_mut()
                .insert(RESHARE_ANNOTATION.to_owned(), token.to_owned());
        })
    };
    for token in ["1", "2"] {
        h.reconcile(&reissue(token)).await;
        assert_eq!(h.status("s").reshare_token.as_deref(), Some(token));
    }
    assert_eq!(h.ots_shares(), 3);

    let action = h.reconcile(&reissue("3")).await;
    assert_eq!(h.ots_shares(), 3, "the third reissue within the hour waits");
    let status = h.status("s");
    assert_eq!(status.phase, Phase::Shared);
    assert_eq!(status.reshare_token.as_deref(), Some("2"));
    let ready = ready_condition(&status);
    assert_eq!(ready.reason, "ReissueRefused");
    assert!(
        ready
            .message
            .contains("reissued 2 time(s) in the last hour"),
        "{}",
        ready.message
    );
    // Retried when the hour allows it (a requeue of about an hour), not in a loop and not never.
    assert_ne!(action, Action::await_change());
    assert!(
        h.events()
            .contains(&("Warning".to_owned(), "ReissueRefused".to_owned())),
        "{:?}",
        h.events()
    );
}

#[tokio::test]
async fn reconciles_that_need_the_api_version_at_once_take_one_turn_of_the_budget_for_it() {
    let h = Harness::with(ots_testserver::Config::default(), |c| {
        c.ots_api = crate::ots::ApiVersion::Auto
    })
    .await;
    let url = h.ots.url();
    let turn = Turn::share("test");
    let resolving = (0..20).map(|_| h.ctx.servers.resolve_recorded(&url, None, &turn));
    for server in futures::future::join_all(resolving).await {
        server.expect("the test server");
    }
    assert_eq!(
        h.metric(r#"ots_operator_ots_requests_total{operation="status",status_class="2xx"}"#),
        Some(1.0),
        "one call asked, the others waited for its answer"
    );
}

/// Opens the live link of `name` as its recipient would.
async fn open(h: &Harness, name: &str) {
    let link = h.status(name).link.expect("a link");
    let secret_key = link.rsplit('/').next().expect("a key").to_owned();
    let server = h
        .ctx
        .servers
        .resolve_recorded(&h.ots.url(), None, &Turn::share("test"))
        .await
        .expect("the test server");
    server
        .client
        .reveal(&secret_key, None)
        .await
        .expect("the link opens");
}

#[tokio::test]
async fn each_link_ends_once_in_history_with_its_time_and_the_record_keeps_it() {
    use crate::resource::LinkEnd;
    let h = Harness::new().await;
    h.put_secret("db", &[("password", "hunter2")]);
    shared(&h, "h", json!({"ttl": "1h"})).await;
    let annotate = |key: &'static str, value: &'static str| {
        h.edit("h", |s| {
            s.annotations_mut().insert(key.to_owned(), value.to_owned());
        })
    };
    let ends =
        |h: &Harness| -> Vec<LinkEnd> { h.status("h").history.iter().map(|e| e.ended).collect() };

    // A reissue ends the live link: Reshared, shared at the old link's time.
    let first = h.status("h");
    h.reconcile(&annotate(RESHARE_ANNOTATION, "1")).await;
    let second = h.status("h");
    assert_eq!(ends(&h), [LinkEnd::Reshared]);
    assert_eq!(
        second.history[0].shared_at,
        first.shared_at.clone().unwrap()
    );

    // Received: receivedAt, and its entry at that time.
    open(&h, "h").await;
    check_now(&h, "h");
    h.reconcile(&h.current("h")).await;
    let received = h.status("h");
    assert_eq!(received.phase, Phase::Received);
    assert_eq!(ends(&h), [LinkEnd::Reshared, LinkEnd::Received]);
    assert_eq!(
        Some(received.history[1].ended_at.clone()),
        received.received_at
    );
    assert_eq!(received.history[1].shared_at, second.shared_at.unwrap());

    // A reissue of a received link adds nothing for it, and clears the old link's times.
    h.reconcile(&annotate(RESHARE_ANNOTATION, "2")).await;
    let third = h.status("h");
    assert_eq!(third.phase, Phase::Shared);
    assert_eq!(ends(&h), [LinkEnd::Reshared, LinkEnd::Received]);
    assert_eq!(third.received_at, None);
    // The record of the new link keeps the history (a wiped status gets it back).
    let record = h.record_text("h");
    assert!(record.contains(r#""ended":"Received""#), "{record}");

    // Burned on request: burnedAt, and its entry.
    h.reconcile(&annotate(BURN_ANNOTATION, "b")).await;
    let burned = h.status("h");
    assert_eq!(burned.phase, Phase::Burned);
    assert!(burned.burned_at.is_some());
    assert_eq!(
        ends(&h),
        [LinkEnd::Reshared, LinkEnd::Received, LinkEnd::Burned]
    );
    assert_eq!(Some(burned.history[2].ended_at.clone()), burned.burned_at);

    // Expired: expiredAt is set (the link's expiry time or, as here where only the server's
    // clock moved on, when the server first said so: never later than expiresAt).
    h.reconcile(&annotate(RESHARE_ANNOTATION, "3")).await;
    let fourth = h.status("h");
    assert_eq!((fourth.phase, fourth.burned_at), (Phase::Shared, None));
    h.ots.advance_clock(Duration::from_secs(2 * 3600));
    check_now(&h, "h");
    h.reconcile(&h.current("h")).await;
    let expired = h.status("h");
    assert_eq!(expired.phase, Phase::Expired);
    let expired_at = expired.expired_at.clone().expect("expiredAt");
    assert!(Some(&expired_at) <= fourth.expires_at.as_ref());
    assert_eq!(expired.history[3].ended_at, expired_at);
    assert_eq!(
        ends(&h),
        [
            LinkEnd::Reshared,
            LinkEnd::Received,
            LinkEnd::Burned,
            LinkEnd::Expired
        ]
    );
    // Looking again changes nothing.
    check_now(&h, "h");
    h.reconcile(&h.current("h")).await;
    assert_eq!(h.status("h").history, expired.history);
    // Nothing in the history is a capability.
    let json = serde_json::to_string(&expired.history).unwrap();
    for capability in [expired.link.unwrap(), expired.metadata_key.unwrap()] {
        let key = capability.rsplit('/').next().unwrap().to_owned();
        assert!(!json.contains(&key), "{json}");
    }
}
