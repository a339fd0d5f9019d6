//! The operator's records (one Secret per link, in its state namespace) are listed in pages of
//! 500 on a real kube-apiserver: with more records than a page holds, the start-up index, the
//! orphan sweep's key list and the record collector each see every record, and the collector
//! deletes exactly those of resources that are gone.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use ots_operator::controller::records::{Records, ShareRecord, StoredRecord};

fn record(namespace: &str, n: usize) -> StoredRecord {
    StoredRecord {
        record: ShareRecord {
            uid: format!("00000000-0000-4000-8000-{n:012}"),
            namespace: namespace.to_owned(),
            name: format!("share-{n}"),
            metadata_key: format!("key{n:059}"),
            server_url: "https://ots.example".to_owned(),
            link: format!("https://ots.example/secret/s{n:061}"),
            metadata_link: String::new(),
            ttl_seconds: 3600,
            shared_at: 1_800_000_000,
            expires_at: 1_800_003_600,
            passphrase_protected: false,
            source_resource_version: None,
            reshare_token: None,
            links_in_a_row: 1,
            reissued_at: Vec::new(),
            burn_token: None,
            history: Vec::new(),
        },
        passphrase: None,
        credentials: None,
        ca: None,
    }
}

#[tokio::test]
async fn records_beyond_one_page_are_all_indexed_known_and_collected() {
    let client = support::cluster::client().await;
    let namespace = support::cluster::test_namespace(&client, "record-pages").await;
    let records = Records::new(client, &namespace);
    // Two full pages and a part of a third.
    let count = 1_050;
    futures::stream::iter(0..count)
        .map(|n| {
            let records = &records;
            let stored = record(&namespace, n);
            async move { records.save(&stored).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("records saved");

    let index = records.index().await.expect("index");
    assert_eq!(index.len(), count, "the index saw every page");
    let uids: HashSet<&str> = index.iter().map(|(uid, _, _)| uid.as_str()).collect();
    assert_eq!(uids.len(), count, "no record twice");
    assert_eq!(
        records.metadata_keys().await.expect("keys").len(),
        count,
        "the sweep's key list saw every page"
    );

    // Half of the resources are still there: the collector deletes the other half, from
    // every page.
    let live: HashSet<String> = (0..count)
        .step_by(2)
        .map(|n| record(&namespace, n).record.uid)
        .collect();
    let deleted = records
        .collect_garbage(&[], &live, Duration::ZERO)
        .await
        .expect("collect");
    assert_eq!(deleted, count - live.len());
    let left: HashSet<String> = records
        .index()
        .await
        .expect("index")
        .into_iter()
        .map(|(uid, _, _)| uid)
        .collect();
    assert_eq!(left, live, "exactly the records of live resources are left");
}
