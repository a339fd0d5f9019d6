//! Every secret the operator creates is accounted for, even when the server stores a share but
//! its answer is lost on the way back (a timeout after the store, a 5xx or garbage from a proxy,
//! a reset connection): on the real control plane, against faults that strike after the store.

mod support;

use ots_testserver::{Account, AfterStoreFault, AfterStoreKind, Config, Faults, TestServer};
use serde_json::json;
use std::collections::BTreeSet;
use support::operator::*;
use support::world::World;

const USER: &str = "robot@example.com";
const TOKEN: &str = "tok-dedicated-7";

fn lose_answers(server: &TestServer, kind: AfterStoreKind, count: u32) {
    server.set_faults(Faults {
        after_store: Some(AfterStoreFault {
            kind,
            rate: None,
            count: Some(count),
        }),
        ..Faults::default()
    });
}

/// Shares `n` resources under lost answers, checks one live secret per resource, then deletes
/// them and checks that nothing stays live.
async fn shares_survive_lost_answers(prefix: &str, kind: AfterStoreKind, n: usize, lost: u32) {
    let w = World::with(
        prefix,
        Config {
            accounts: vec![Account::new(USER, TOKEN)],
            ..Config::default()
        },
        &sweeping_account(USER, TOKEN, "1s", "5s"),
    )
    .await;
    lose_answers(&w.server, kind, lost * n as u32);
    w.secret("db", &[("password", b"counted")]).await;
    for i in 0..n {
        w.share(
            &format!("s{i}"),
            json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "1h"}),
        )
        .await;
    }
    let mut recorded = BTreeSet::new();
    for i in 0..n {
        let shared = w.shared(&format!("s{i}")).await;
        recorded.insert(shared.status.unwrap().metadata_key.unwrap());
    }
    assert_eq!(
        w.server.faults().after_store.and_then(|f| f.count),
        Some(0),
        "every planned answer was lost"
    );
    assert!(
        w.calls("share") >= (n as u64) * (u64::from(lost) + 1),
        "each lost answer was followed by another share call"
    );
    // A lone candidate is burned at once; several at once (shares failing together) are left
    // to the sweep, which burns them once they are older than its grace period.
    let deadline = std::time::Instant::now() + WAIT;
    while live_keys(&w.server) != recorded {
        assert!(
            std::time::Instant::now() < deadline,
            "exactly one live secret per resource, the recorded one: live {:?}, recorded {recorded:?}",
            live_keys(&w.server)
        );
        assert!(
            recorded.is_subset(&live_keys(&w.server)),
            "a recorded link was burned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for i in 0..n {
        w.delete_share(&format!("s{i}")).await;
    }
    for i in 0..n {
        w.wait_gone(&format!("s{i}")).await;
    }
    assert!(
        live_keys(&w.server).is_empty(),
        "nothing live after deletion"
    );
}

#[tokio::test]
async fn answers_lost_to_5xx_after_the_store_leave_exactly_one_live_secret_per_share() {
    shares_survive_lost_answers("lost-503", AfterStoreKind::Status503, 3, 3).await;
}

#[tokio::test]
async fn answers_lost_to_timeouts_after_the_store_leave_exactly_one_live_secret_per_share() {
    shares_survive_lost_answers("lost-hang", AfterStoreKind::Hang, 1, 3).await;
}

#[tokio::test]
async fn answers_lost_to_garbage_and_resets_leave_exactly_one_live_secret_per_share() {
    shares_survive_lost_answers("lost-garbage", AfterStoreKind::Garbage, 2, 2).await;
    shares_survive_lost_answers("lost-reset", AfterStoreKind::Reset, 2, 2).await;
}

#[tokio::test]
async fn on_an_account_people_may_share_a_possible_orphan_is_reported_not_burned() {
    let w = World::with(
        "lost-shared-account",
        Config {
            accounts: vec![Account::new(USER, TOKEN)],
            ..Config::default()
        },
        &["--ots-username", USER, "--ots-api-token", TOKEN],
    )
    .await;
    lose_answers(&w.server, AfterStoreKind::Status502, 1);
    w.secret("db", &[("password", b"reported")]).await;
    w.share_key("s", "db", "password").await;
    let note = w.wait_event("s", "Warning", "ServerUnavailable").await;
    assert!(note.contains("may have stored"), "{note}");
    assert!(note.contains("not burned"), "{note}");
    let shared = w.shared("s").await;
    assert_eq!(
        live_keys(&w.server).len(),
        2,
        "the orphan stays: it may be a person's"
    );
    assert_eq!(w.calls("burn"), 0);
    assert!(live_keys(&w.server).contains(&shared.status.unwrap().metadata_key.unwrap()));
}

#[tokio::test]
async fn anonymous_lost_answers_are_counted_and_said_in_the_condition() {
    let w = World::start("lost-anonymous").await;
    lose_answers(&w.server, AfterStoreKind::Status503, 2);
    w.secret("db", &[("password", b"anon")]).await;
    w.share_key("s", "db", "password").await;
    let pending = w
        .wait_for("s", "a possible orphan in the condition", |o| {
            ready(o).is_some_and(|(_, _, message)| message.contains("anonymous use offers no way"))
        })
        .await;
    assert_eq!(phase(&pending), "Pending");
    w.shared("s").await;
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("ots_operator_orphans_possible_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_orphan_sweep_burns_unrecorded_live_secrets_of_a_dedicated_account_only() {
    let server = ots_server(Config {
        accounts: vec![
            Account::new(USER, TOKEN),
            Account::new("person@example.com", "tok-person-3"),
        ],
        ..Config::default()
    });
    let account = |user: &str, token: &str| {
        ots_operator::ots::OtsClient::new(
            ots_operator::ots::ClientConfig::new(url::Url::parse(&server.url()).unwrap())
                .with_credentials(ots_operator::ots::Credentials::new(user, token)),
        )
        .unwrap()
    };
    let request = ots_operator::ots::ShareRequest::new("left-behind");
    // An orphan on the operator's account, and a person's secret on another account.
    let orphan = account(USER, TOKEN).share(&request).await.unwrap();
    let persons = account("person@example.com", "tok-person-3")
        .share(&request)
        .await
        .unwrap();
    let w = World::with_server("sweep", server, &sweeping_account(USER, TOKEN, "1s", "2s")).await;
    w.secret("db", &[("password", b"recorded")]).await;
    w.share_key("kept", "db", "password").await;
    let recorded = w.shared("kept").await.status.unwrap().metadata_key.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while live_keys(&w.server).contains(&orphan.metadata_key) {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not burn the orphan"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Several sweeps later, the recorded link and the other account's secret are untouched.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let live = live_keys(&w.server);
    assert!(live.contains(&recorded), "a recorded link is never swept");
    assert!(
        live.contains(&persons.metadata_key),
        "another account's secret is never swept"
    );
}
