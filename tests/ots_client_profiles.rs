//! The OTS client against `ots-testserver`'s profiles of the real server: today's
//! onetimesecret.com (`current`), self-hosted v0.21–v0.23 (`v0.23`) and v0.18–v0.20 (`v0.20`),
//! with plans and guest routes. Each test is a behaviour issue 10 found missing.

mod ots_client_common;

use std::time::Duration;

use ots_client_common::{EMAIL, TOKEN, anon, authed, base, count, reveal_shared, server_with};
use ots_operator::ots::{
    ApiVersion, BurnOutcome, ClientConfig, Credentials, OtsClient, OtsError, ResolvedApi,
    SecretState, ShareRequest,
};
use ots_testserver::{Config, Plan, Profile};

const PROFILES: [Profile; 3] = [Profile::Current, Profile::V0_23, Profile::V0_20];

fn profile(profile: Profile) -> Config {
    Config {
        profile,
        ..Config::default()
    }
}

/// Shares `text`, reveals it, then burns its receipt: the burn's outcome.
async fn burn_after_reveal(client: &OtsClient, text: &str) -> BurnOutcome {
    let receipt = client.share(&ShareRequest::new(text)).await.unwrap();
    reveal_shared(client, &receipt).await.unwrap();
    client.burn(&receipt.metadata_key, None).await.unwrap()
}

/// Whether a burn found the secret already gone because it was received.
fn gone_as_received(outcome: &BurnOutcome) -> bool {
    matches!(
        outcome,
        BurnOutcome::AlreadyGone {
            state: SecretState::Received,
            ..
        }
    )
}

#[tokio::test]
async fn auto_speaks_v2_on_every_profile_and_the_lifecycle_works() {
    for p in PROFILES {
        let server = server_with(profile(p)).await;
        let client = anon(&server, ApiVersion::Auto);
        assert_eq!(client.api_version().await, Ok(ResolvedApi::V2), "{p}");
        let receipt = client.share(&ShareRequest::new("lifecycle")).await.unwrap();
        let live = client.receipt(&receipt.metadata_key).await.unwrap();
        assert!(!live.state.is_final(), "{p}: a fresh link is live");
        let secret_key = receipt.secret_key.clone().unwrap();
        client.reveal(&secret_key, None).await.unwrap();
        let after = client.receipt(&receipt.metadata_key).await.unwrap();
        assert_eq!(after.state, SecretState::Received, "{p}");
    }
}

#[tokio::test]
async fn burning_a_revealed_secret_is_already_gone_as_received_on_every_profile() {
    for p in PROFILES {
        let server = server_with(profile(p)).await;
        for api in [ApiVersion::V1, ApiVersion::V2] {
            let client = anon(&server, api);
            let outcome = burn_after_reveal(&client, "opened").await;
            assert!(gone_as_received(&outcome), "{p} {api}: {outcome:?}");
        }
    }
}

#[tokio::test]
async fn burning_an_unread_secret_burns_it_on_every_profile() {
    for p in PROFILES {
        let server = server_with(profile(p)).await;
        let client = anon(&server, ApiVersion::V2);
        let receipt = client.share(&ShareRequest::new("unread")).await.unwrap();
        let outcome = client.burn(&receipt.metadata_key, None).await.unwrap();
        assert!(
            matches!(&outcome, BurnOutcome::Burned(r) if r.state == SecretState::Burned),
            "{p}: {outcome:?}"
        );
        assert_eq!(server.stats().live_secrets, 0, "{p}");
        let after = client.receipt(&receipt.metadata_key).await.unwrap();
        assert_eq!(after.state, SecretState::Burned, "{p}");
    }
}

#[tokio::test]
async fn on_v020_receipts_are_found_under_private_once() {
    let server = server_with(profile(Profile::V0_20)).await;
    let client = anon(&server, ApiVersion::V2);
    let receipt = client.share(&ShareRequest::new("old")).await.unwrap();
    for _ in 0..3 {
        let live = client.receipt(&receipt.metadata_key).await.unwrap();
        assert!(!live.state.is_final(), "a live link is not expired");
    }
    let unknown_routes = server
        .requests()
        .iter()
        .filter(|r| r.operation == "not_found")
        .count();
    assert_eq!(unknown_routes, 1, "`/receipt/*` is tried once per server");
}

#[tokio::test]
async fn a_ttl_above_a_free_plan_is_an_entitlement_refusal_on_v2_and_granted_shorter_on_v1() {
    let server = server_with(Config {
        plan: Plan::Free,
        ..Config::default()
    })
    .await;
    let month = ShareRequest::new("x").with_ttl(Duration::from_secs(30 * 86_400));
    let err = authed(&server, ApiVersion::V2)
        .share(&month)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OtsError::EntitlementRequired { entitlement } if entitlement.as_deref() == Some("extended_default_expiration")),
        "{err:?}"
    );
    let granted = authed(&server, ApiVersion::V1).share(&month).await.unwrap();
    assert_eq!(granted.ttl, Some(14 * 86_400), "v1 clamps silently");
}

#[tokio::test]
async fn with_guest_routes_off_anonymous_auto_shares_through_v1_and_v2_is_refused() {
    let server = server_with(Config {
        guest_routes: false,
        ..Config::default()
    })
    .await;
    assert_eq!(
        anon(&server, ApiVersion::V2)
            .share(&ShareRequest::new("x"))
            .await
            .unwrap_err(),
        OtsError::GuestRoutesDisabled
    );
    let auto = anon(&server, ApiVersion::Auto);
    let receipt = auto.share(&ShareRequest::new("guest")).await.unwrap();
    let tracked = auto.receipt(&receipt.metadata_key).await.unwrap();
    assert_eq!(tracked.state, SecretState::New);
    assert!(matches!(
        auto.burn(&receipt.metadata_key, None).await.unwrap(),
        BurnOutcome::Burned(_)
    ));
    // An account is not a guest: v2 works.
    authed(&server, ApiVersion::V2)
        .share(&ShareRequest::new("x"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_with_a_larger_size_limit_takes_larger_values_when_the_pre_check_is_raised() {
    let server = server_with(Config {
        max_secret_bytes: 50_000,
        ..Config::default()
    })
    .await;
    let big = ShareRequest::new("z".repeat(30_000));
    let raised = OtsClient::new(
        ClientConfig::new(base(&server))
            .with_api(ApiVersion::V2)
            .with_max_secret_bytes(50_000),
    )
    .unwrap();
    raised.share(&big).await.unwrap();
    let too_big = ShareRequest::new("z".repeat(50_001));
    let limited = OtsClient::new(
        ClientConfig::new(base(&server))
            .with_api(ApiVersion::V2)
            .with_max_secret_bytes(100_000),
    )
    .unwrap();
    assert_eq!(
        limited.share(&too_big).await.unwrap_err(),
        OtsError::SecretTooLarge { max: Some(50_000) }
    );
}

#[tokio::test]
async fn credentials_are_verified_on_every_profile() {
    for p in PROFILES {
        let server = server_with(profile(p)).await;
        for api in [ApiVersion::V1, ApiVersion::V2] {
            assert_eq!(
                authed(&server, api).verify_credentials().await,
                Ok(()),
                "{p} {api}"
            );
            let wrong = OtsClient::new(
                ClientConfig::new(base(&server))
                    .with_api(api)
                    .with_credentials(Credentials::new(EMAIL, format!("{TOKEN}-wrong"))),
            )
            .unwrap();
            assert_eq!(
                wrong.verify_credentials().await,
                Err(OtsError::Unauthorized),
                "{p} {api}"
            );
        }
        assert_eq!(count(&server, "share"), 0, "{p}: verified without sharing");
    }
}

#[tokio::test]
async fn a_v023_refused_burn_is_confirmed_through_the_receipt() {
    let server = server_with(profile(Profile::V0_23)).await;
    let client = anon(&server, ApiVersion::V2);
    let outcome = burn_after_reveal(&client, "x").await;
    assert!(gone_as_received(&outcome), "{outcome:?}");
    assert!(
        server.requests().iter().any(|r| r.status == 500),
        "the v0.23 profile answered the burn 500"
    );
}
