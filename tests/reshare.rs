//! `onSecretChange: Reshare` edge cases on a real control plane: a changed Secret whose new value
//! cannot be shared says so, and a reshare after the old link was opened claims no burn.

mod support;

use serde_json::json;
use support::operator::*;
use support::world::World;

#[tokio::test]
async fn a_reshare_blocked_by_an_invalid_new_value_says_so_and_keeps_the_old_link() {
    let w = World::start("reshare-blocked").await;
    let shared = w
        .shared_db("follow", b"first", json!({"onSecretChange": "Reshare"}))
        .await;
    let key = shared
        .status
        .as_ref()
        .unwrap()
        .metadata_key
        .clone()
        .unwrap();

    w.update_secret("db", &[("password", &[b'x'; 10_001])])
        .await;
    let blocked = w
        .wait_for("follow", "a condition about the blocked reshare", |o| {
            ready_reason_is(o, "SecretTooLarge")
        })
        .await;
    let (ready_status, _, message) = ready(&blocked).unwrap();
    assert_eq!(
        ready_status, "True",
        "the old link is still ready to hand out"
    );
    assert!(message.contains("previous link stays live"), "{message}");
    assert_eq!(phase(&blocked), "Shared");
    assert_eq!(
        blocked.status.as_ref().unwrap().metadata_key.as_deref(),
        Some(key.as_str())
    );
    assert!(
        w.server
            .live_receipts()
            .iter()
            .any(|r| r.metadata_key == key),
        "nothing was burned for a value that cannot be shared"
    );
    assert_eq!(w.calls("burn"), 0);
}

#[tokio::test]
async fn a_reshare_after_the_link_was_opened_claims_no_burn() {
    let w = World::start("reshare-received").await;
    let shared = w
        .shared_db("follow", b"first", json!({"onSecretChange": "Reshare"}))
        .await;
    assert_eq!(w.reveal(&shared).await, "first");
    w.wait_phase("follow", "Received").await;
    w.update_secret("db", &[("password", b"second")]).await;
    let note = w.wait_event("follow", "Normal", "Reshared").await;
    assert!(!note.contains("burned"), "{note}");
    assert!(note.contains("opened"), "{note}");
    assert_eq!(w.calls("burn"), 0);
    let reshared = w.shared("follow").await;
    assert_eq!(w.reveal(&reshared).await, "second");
}
