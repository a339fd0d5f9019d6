//! Live links checked in batches (issue 24) on a real control plane: the v2 batch status call
//! (`POST /api/v2/secret/status`) covers every live link of a server, and a receipt is read only
//! for a link that left its answer. A server without the route, and a server whose batch answer
//! lies, fall back to receipts without losing or misjudging a link.

mod support;

use std::time::{Duration, Instant};

use ots_operator::ots::BurnOutcome;
use ots_testserver::{BatchStatusFault, Config, Faults, Profile};
use serde_json::json;
use support::operator::{Operator, fast_args, ots_client, ots_server};
use support::world::World;

/// Waits until the server has answered `n` more batch status calls than `before`.
async fn batch_calls_after(w: &World, before: u64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.calls("secret_status_list") < before + n {
        assert!(
            Instant::now() < deadline,
            "no batch status call came ({} so far)",
            w.calls("secret_status_list")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator whose links' own checks are rare (`--refresh-max 10m`): whatever it sees within
/// a test comes from the batch calls, made every `--refresh-min` (1 s).
async fn rare_own_checks(prefix: &str) -> World {
    World::with_operator(prefix, ots_server(Config::default()), |ns, url| {
        let mut args = fast_args(ns, url);
        let at = args.iter().position(|a| a == "--refresh-max").unwrap();
        args[at + 1] = "10m".into();
        Operator::start_with(&args, &[("RUST_LOG", "info,ots_operator=debug")])
    })
    .await
}

#[tokio::test]
async fn live_links_are_checked_together_and_only_a_revealed_one_reads_its_receipt() {
    let w = rare_own_checks("batch").await;
    w.secret("db", &[("password", b"s3cret")]).await;
    let names: Vec<String> = (0..12).map(|i| format!("share-{i}")).collect();
    for name in &names {
        w.share(
            name,
            json!({"secretRef": {"name": "db", "key": "password"}}),
        )
        .await;
    }
    let mut links = Vec::new();
    for name in &names {
        links.push(w.shared(name).await.status.unwrap().link.unwrap());
    }
    // Every link handed to the tracker: a few rounds of checks read no receipt at all.
    let receipts = w.calls("receipt");
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 3).await;
    assert_eq!(
        w.calls("receipt"),
        receipts,
        "no link read its own receipt while it stayed unread"
    );

    for link in &links[..3] {
        assert_eq!(w.reveal_link(link, None).await.expect("reveal"), "s3cret");
    }
    for name in &names[..3] {
        w.wait_phase(name, "Received").await;
    }
    assert_eq!(
        w.calls("receipt"),
        receipts + 3,
        "one receipt read per revealed link, none for the others"
    );
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 2).await;
    for name in &names[3..] {
        let share = w.shared(name).await;
        assert_eq!(share.status.unwrap().phase.as_str(), "Shared", "{name}");
    }
    assert_eq!(
        w.calls("receipt"),
        receipts + 3,
        "the rest still read nothing"
    );
}

#[tokio::test]
async fn a_server_without_the_batch_route_has_each_link_read_by_its_receipt() {
    // v0.20 answers v2 but has no batch status route.
    let w = World::with(
        "batch-old",
        Config {
            profile: Profile::V0_20,
            ..Config::default()
        },
        &[],
    )
    .await;
    w.secret("db", &[("password", b"old-server")]).await;
    w.share("s", json!({"secretRef": {"name": "db", "key": "password"}}))
        .await;
    let link = w.shared("s").await.status.unwrap().link.unwrap();
    assert_eq!(
        w.reveal_link(&link, None).await.expect("reveal"),
        "old-server"
    );
    w.wait_phase("s", "Received").await;
    assert_eq!(
        w.calls("secret_status_list"),
        0,
        "the server has no such route"
    );
    assert!(w.calls("receipt") >= 1, "the receipt told");
}

#[tokio::test]
async fn a_batch_answer_that_lies_never_turns_a_live_link_received() {
    let w = World::start("batch-lie").await;
    w.server.set_faults(Faults {
        batch_status_omits: true,
        ..Faults::default()
    });
    w.secret("db", &[("password", b"still-here")]).await;
    w.share("s", json!({"secretRef": {"name": "db", "key": "password"}}))
        .await;
    let link = w.shared("s").await.status.unwrap().link.unwrap();
    let receipts = w.calls("receipt");
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 3).await;
    let share = w.shared("s").await;
    let status = share.status.unwrap();
    assert_eq!(
        status.phase.as_str(),
        "Shared",
        "the receipt said it is unread"
    );
    assert!(
        w.calls("receipt") > receipts,
        "each omission was checked against the receipt"
    );
    // The link still works, and its reveal is still seen.
    w.server.set_faults(Faults::default());
    assert_eq!(
        w.reveal_link(&link, None).await.expect("reveal"),
        "still-here"
    );
    w.wait_phase("s", "Received").await;
}

/// The time a share or a burn may take while every batch call fails: the test server answers
/// in milliseconds and the operator's budget is 100 calls/s, so this is the slack of a loaded CI
/// machine, not a wait for tracking (a 429's `Retry-After` is 2 s).
const UNSTALLED: Duration = Duration::from_secs(10);

/// Every batch call fails as `fault` while a link is live: nothing is concluded (the link stays
/// Shared, no receipt is read on the failure's word), a new share and a deletion's burn go
/// through within [`UNSTALLED`], and once the route answers again the link's reveal is seen
/// through it.
async fn failing_batch_calls_conclude_nothing_and_stall_nothing(
    prefix: &str,
    fault: BatchStatusFault,
) {
    let w = rare_own_checks(prefix).await;
    w.secret("db", &[("password", b"kept")]).await;
    for name in ["live", "doomed"] {
        w.share(
            name,
            json!({"secretRef": {"name": "db", "key": "password"}}),
        )
        .await;
    }
    let link = w.shared("live").await.status.unwrap().link.unwrap();
    w.shared("doomed").await;
    let receipts = w.calls("receipt");

    w.server.set_faults(Faults {
        batch_status_fails: Some(fault),
        ..Faults::default()
    });
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 2).await;

    let started = Instant::now();
    w.share(
        "fresh",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    w.shared("fresh").await;
    let share_took = started.elapsed();
    let burns = w.calls("burn");
    let started = Instant::now();
    w.delete_share("doomed").await;
    w.wait_gone("doomed").await;
    let burn_took = started.elapsed();
    assert_eq!(w.calls("burn"), burns + 1, "the deletion burned its link");
    assert!(
        share_took < UNSTALLED && burn_took < UNSTALLED,
        "failing batch calls held a share ({share_took:?}) or a burn ({burn_took:?}) back"
    );

    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 2).await;
    let live = w.shared("live").await.status.unwrap();
    assert_eq!(
        live.phase.as_str(),
        "Shared",
        "a failure says nothing about a link"
    );
    assert_eq!(
        w.calls("receipt"),
        receipts,
        "no receipt was read on a failed batch call's word"
    );

    w.server.set_faults(Faults::default());
    assert_eq!(w.reveal_link(&link, None).await.expect("reveal"), "kept");
    w.wait_phase("live", "Received").await;
}

#[tokio::test]
async fn a_batch_call_answered_500_concludes_nothing_and_stalls_nothing() {
    failing_batch_calls_conclude_nothing_and_stall_nothing(
        "batch-500",
        BatchStatusFault::Status500,
    )
    .await;
}

#[tokio::test]
async fn a_batch_call_answered_429_concludes_nothing_and_stalls_nothing() {
    failing_batch_calls_conclude_nothing_and_stall_nothing(
        "batch-429",
        BatchStatusFault::RateLimited,
    )
    .await;
}

#[tokio::test]
async fn a_batch_call_that_times_out_concludes_nothing_and_stalls_nothing() {
    failing_batch_calls_conclude_nothing_and_stall_nothing("batch-hang", BatchStatusFault::Hang)
        .await;
}

#[tokio::test]
async fn a_batch_call_answered_with_garbage_concludes_nothing_and_stalls_nothing() {
    failing_batch_calls_conclude_nothing_and_stall_nothing("batch-html", BatchStatusFault::Garbage)
        .await;
}

/// The batch answer only says a link left; its one receipt read says how: a link revealed turns
/// Received, one burned by its creator elsewhere (on the server, with the metadata key) Burned,
/// and one that outlived its ttl Expired, each with exactly one receipt read and the link beside
/// them still Shared.
#[tokio::test]
async fn a_revealed_a_burned_and_an_expired_link_are_each_told_apart_by_one_receipt_read() {
    let w = rare_own_checks("batch-ends").await;
    w.secret("db", &[("password", b"three-ways")]).await;
    for name in ["revealed", "burned", "stays"] {
        w.share(
            name,
            json!({"secretRef": {"name": "db", "key": "password"}}),
        )
        .await;
    }
    w.share(
        "expires",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    let mut status = std::collections::HashMap::new();
    for name in ["revealed", "burned", "stays", "expires"] {
        status.insert(name, w.shared(name).await.status.unwrap());
    }
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 2).await;
    let receipts = w.calls("receipt");

    let link = status["revealed"].link.clone().unwrap();
    assert_eq!(
        w.reveal_link(&link, None).await.expect("reveal"),
        "three-ways"
    );
    let key = status["burned"].metadata_key.clone().unwrap();
    match ots_client(&w.server).burn(&key, None).await.expect("burn") {
        BurnOutcome::Burned(_) => {}
        other => panic!("the creator's burn found the secret gone: {other:?}"),
    }
    w.server.advance_clock(Duration::from_secs(61));

    w.wait_phase("revealed", "Received").await;
    w.wait_phase("burned", "Burned").await;
    w.wait_phase("expires", "Expired").await;
    assert_eq!(
        w.calls("receipt"),
        receipts + 3,
        "one receipt read per link that left the answer"
    );
    let batches = w.calls("secret_status_list");
    batch_calls_after(&w, batches, 2).await;
    assert_eq!(
        w.shared("stays").await.status.unwrap().phase.as_str(),
        "Shared"
    );
    assert_eq!(
        w.calls("receipt"),
        receipts + 3,
        "and none for the live one"
    );
}
