//! The one-time reveal is atomic: of many simultaneous reveals exactly one wins.

mod common;

use common::{started, v1_secret_path};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_v1_reveals_yield_exactly_one_success() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "race me")]).await;
    let url = api.url(&v1_secret_path(&r));
    let attempts = (0..100).map(|_| {
        let http = api.http.clone();
        let url = url.clone();
        tokio::spawn(async move { common::send(http.post(url)).await })
    });
    let answers: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let wins: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(wins.len(), 1, "exactly one reveal succeeds");
    assert_eq!(wins[0].json["value"], "race me");
    for a in answers.iter().filter(|a| a.status != 200) {
        a.assert_v1_error("Unknown secret", None);
    }
    assert_eq!(s.stats().by_operation["reveal"], 100);
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_v2_reveals_yield_exactly_one_success() {
    let (_s, api) = started().await;
    let body = api.v2_conceal(json!({"secret": "race me too"})).await;
    let sk = body["record"]["secret"]["identifier"].as_str().unwrap();
    let url = api.url(&format!("/api/v2/secret/{sk}/reveal"));
    let attempts = (0..100).map(|_| {
        let http = api.http.clone();
        let url = url.clone();
        tokio::spawn(
            async move { common::send(http.post(url).json(&json!({"continue": true}))).await },
        )
    });
    let answers: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    assert_eq!(answers.iter().filter(|a| a.status == 404).count(), 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_shares_all_get_distinct_keys() {
    let (s, api) = started().await;
    let url = api.url("/api/v1/share");
    let tasks = (0..200).map(|i| {
        let http = api.http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            common::send(http.post(url).form(&[("secret", format!("v{i}"))])).await
        })
    });
    let mut keys: Vec<String> = join_all(tasks)
        .await
        .into_iter()
        .map(|a| a.unwrap().json["secret_key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 200);
    assert_eq!(s.stats().live_secrets, 200);
}
