//! The OTS client's batch status call (`OtsClient::unread_among`, v2 `POST /secret/status`)
//! against `ots-testserver`, which answers it as the genuine server does
//! (`testing/ots-server/tests/real_ots_differential.rs`, the "v2 batch status" requests).

mod ots_client_common;

use ots_client_common::{anon, authed, count, reveal_shared, server, server_with};
use ots_operator::ots::{ApiVersion, OtsError, ShareRequest, Unread};
use ots_testserver::{Config, Profile};

const UNKNOWN: &str = "unknownkey000000000000000000000000000000000000000000000000000x";

#[tokio::test]
async fn lists_the_unread_and_leaves_out_revealed_burned_and_unknown_secrets() {
    for profile in [Profile::Current, Profile::V0_23] {
        let server = server_with(Config {
            profile,
            ..Config::default()
        })
        .await;
        let client = authed(&server, ApiVersion::V2);
        let mut receipts = Vec::new();
        for value in ["live", "revealed", "burned"] {
            receipts.push(client.share(&ShareRequest::new(value)).await.unwrap());
        }
        reveal_shared(&client, &receipts[1]).await.unwrap();
        client.burn(&receipts[2].metadata_key, None).await.unwrap();
        let mut keys: Vec<&str> = receipts
            .iter()
            .map(|r| r.secret_key.as_deref().unwrap())
            .collect();
        keys.push(UNKNOWN);
        keys.push(keys[0]);

        let answer = client.unread_among(&keys).await.unwrap();

        let live = Unread::Yes { previewed: false };
        assert_eq!(
            answer,
            [live, Unread::Left, Unread::Left, Unread::Left, live],
            "{profile}: one answer per key, in order"
        );
        assert_eq!(
            count(&server, "secret_status_list"),
            1,
            "{profile}: one call"
        );
        // It read nothing: the live secret still reveals.
        assert_eq!(
            reveal_shared(&client, &receipts[0])
                .await
                .map(|v| ots_operator::ots::ExposeSecret::expose_secret(&v).to_owned()),
            Ok("live".to_owned()),
            "{profile}"
        );
    }
}

#[tokio::test]
async fn two_hundred_links_take_one_call() {
    let server = server().await;
    let client = anon(&server, ApiVersion::V2);
    let mut keys = Vec::new();
    for i in 0..200 {
        let receipt = client
            .share(&ShareRequest::new(format!("value {i}")))
            .await
            .unwrap();
        keys.push(receipt.secret_key.unwrap());
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let answer = client.unread_among(&keys).await.unwrap();
    assert_eq!(answer, vec![Unread::Yes { previewed: false }; 200]);
    assert_eq!(count(&server, "secret_status_list"), 1);
}

#[tokio::test]
async fn a_server_without_the_route_says_so_and_is_never_taken_for_gone_links() {
    // v0.20 has no batch route; a v1 client has none either.
    let old = server_with(Config {
        profile: Profile::V0_20,
        ..Config::default()
    })
    .await;
    let current = server().await;
    for (name, client) in [
        ("v0.20", authed(&old, ApiVersion::V2)),
        ("v1", authed(&current, ApiVersion::V1)),
    ] {
        let receipt = client.share(&ShareRequest::new("x")).await.unwrap();
        let key = receipt.secret_key.clone().unwrap();
        let answer = client.unread_among(&[key.as_str()]).await;
        assert!(
            matches!(answer, Err(OtsError::RouteNotFound { .. })),
            "{name}: {answer:?}"
        );
        if let Err(error) = answer {
            assert!(!error.to_string().contains(&key), "{name}: the key leaked");
        }
    }
}

#[tokio::test]
async fn a_key_that_is_not_a_key_is_refused_before_anything_is_sent() {
    let server = server().await;
    let client = anon(&server, ApiVersion::V2);
    let answer = client.unread_among(&["abc,def"]).await;
    assert!(
        matches!(answer, Err(OtsError::InvalidInput(_))),
        "{answer:?}"
    );
    assert_eq!(client.unread_among(&[]).await, Ok(Vec::new()));
    assert_eq!(count(&server, "secret_status_list"), 0);
}
