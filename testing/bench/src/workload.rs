//! Inputs (Namespaces, Secrets, OneTimeShares) and a watch that timestamps when each share
//! becomes Shared.

use crate::BenchError;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, Client};
use ots_operator::resource::{OneTimeShare, Phase};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests the benchmark itself keeps in flight when it creates inputs.
pub const CREATE_CONCURRENCY: usize = 32;

/// Name of the source Secret of share `i`.
pub fn secret_name(i: usize) -> String {
    format!("source-{i}")
}

/// Name of share `i`.
pub fn share_name(i: usize) -> String {
    format!("share-{i}")
}

/// The value Secret `i` holds under key `value` (what its link must reveal).
pub fn value(i: usize) -> String {
    format!("bench-value-{i:06}-s3cr3t")
}

/// Creates a namespace.
pub async fn namespace(client: &Client, name: &str) -> Result<(), BenchError> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn secret(name: String, key: &str, data: Vec<u8>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), ByteString(data))])),
        ..Secret::default()
    }
}

/// The OneTimeShare `i`, sharing key `value` of Secret `i` with the defaults.
pub fn share(i: usize) -> Result<OneTimeShare, BenchError> {
    share_via(i, 0)
}

/// The OneTimeShare `i`, naming OtsServer `server-{i mod servers}` (none when `servers` is 0).
fn share_via(i: usize, servers: usize) -> Result<OneTimeShare, BenchError> {
    let mut spec = serde_json::json!({ "secretRef": { "name": secret_name(i), "key": "value" } });
    if servers > 0 {
        spec["serverRef"] =
            serde_json::json!({ "kind": "OtsServer", "name": server_name(i % servers) });
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": { "name": share_name(i) },
        "spec": spec,
    }))?)
}

/// Name of OtsServer `j`.
pub fn server_name(j: usize) -> String {
    format!("server-{j}")
}

/// Creates `count` OtsServers of `url`, each with the account of Secret `server-creds` (made
/// here): as many server objects as a platform team's, all at the benchmark's one test server.
pub async fn create_servers(
    client: &Client,
    ns: &str,
    count: usize,
    url: &str,
    (username, token): (&str, &str),
) -> Result<(), BenchError> {
    let mut creds = secret(
        "server-creds".to_owned(),
        "username",
        username.as_bytes().to_vec(),
    );
    if let Some(data) = creds.data.as_mut() {
        data.insert("apiToken".to_owned(), ByteString(token.as_bytes().to_vec()));
    }
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &creds)
        .await?;
    let api: Api<ots_operator::resource::OtsServer> = Api::namespaced(client.clone(), ns);
    futures::stream::iter((0..count).map(Ok::<_, BenchError>))
        .try_for_each_concurrent(CREATE_CONCURRENCY, |j| {
            let api = api.clone();
            async move {
                let spec = serde_json::from_value(serde_json::json!({
                    "url": url,
                    "credentialsSecretRef": { "name": "server-creds" },
                }))?;
                let server = ots_operator::resource::OtsServer::new(&server_name(j), spec);
                api.create(&PostParams::default(), &server).await?;
                Ok(())
            }
        })
        .await
}

/// Creates the source Secrets `range`.
pub async fn create_sources(
    client: &Client,
    ns: &str,
    range: std::ops::Range<usize>,
) -> Result<(), BenchError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(range.map(Ok::<_, BenchError>))
        .try_for_each_concurrent(CREATE_CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let s = secret(secret_name(i), "value", value(i).into_bytes());
                api.create(&PostParams::default(), &s).await?;
                Ok(())
            }
        })
        .await
}

/// Creates `count` unrelated Secrets of `size` random bytes each.
pub async fn create_unrelated(
    client: &Client,
    ns: &str,
    count: usize,
    size: usize,
) -> Result<(), BenchError> {
    use rand::RngCore;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    futures::stream::iter((0..count).map(Ok::<_, BenchError>))
        .try_for_each_concurrent(8, |i| {
            let api = api.clone();
            async move {
                let mut data = vec![0u8; size];
                rand::rng().fill_bytes(&mut data);
                let s = secret(format!("unrelated-{i}"), "blob", data);
                api.create(&PostParams::default(), &s).await?;
                Ok(())
            }
        })
        .await
}

/// Creates the shares `range`; returns when each create request was sent.
pub async fn create_shares(
    client: &Client,
    ns: &str,
    range: std::ops::Range<usize>,
) -> Result<HashMap<String, Instant>, BenchError> {
    create_shares_via(client, ns, range, 0).await
}

/// [`create_shares`], share `i` naming OtsServer `i mod servers` (none when `servers` is 0).
pub async fn create_shares_via(
    client: &Client,
    ns: &str,
    range: std::ops::Range<usize>,
    servers: usize,
) -> Result<HashMap<String, Instant>, BenchError> {
    let api: Api<OneTimeShare> = Api::namespaced(client.clone(), ns);
    let sent = Arc::new(Mutex::new(HashMap::new()));
    futures::stream::iter(range.map(Ok::<_, BenchError>))
        .try_for_each_concurrent(CREATE_CONCURRENCY, |i| {
            let api = api.clone();
            let sent = sent.clone();
            async move {
                let obj = share_via(i, servers)?;
                let at = Instant::now();
                api.create(&PostParams::default(), &obj).await?;
                if let Ok(mut map) = sent.lock() {
                    map.insert(share_name(i), at);
                }
                Ok(())
            }
        })
        .await?;
    let map = sent.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(map)
}

/// Whether a share has its link.
pub fn is_shared(obj: &OneTimeShare) -> bool {
    obj.status
        .as_ref()
        .is_some_and(|s| s.link.is_some() && matches!(s.phase, Phase::Shared | Phase::Received))
}

/// Whether the recipient opened a share's link.
pub fn is_received(obj: &OneTimeShare) -> bool {
    obj.status
        .as_ref()
        .is_some_and(|s| s.phase == Phase::Received)
}

/// Watches the shares of a namespace and records when each first satisfied a predicate.
pub struct Watch {
    seen: Arc<Mutex<HashMap<String, (Instant, OneTimeShare)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Starts watching `ns` for shares that satisfy `done`.
    pub fn start(client: &Client, ns: &str, done: fn(&OneTimeShare) -> bool) -> Watch {
        let api: Api<OneTimeShare> = Api::namespaced(client.clone(), ns);
        let seen: Arc<Mutex<HashMap<String, (Instant, OneTimeShare)>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let obj = match event {
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => obj,
                    _ => continue,
                };
                if done(&obj)
                    && let Ok(mut map) = record.lock()
                {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    map.entry(name).or_insert((Instant::now(), obj));
                }
            }
        });
        Watch { seen, task }
    }

    /// How many shares satisfied the predicate so far.
    pub fn count(&self) -> usize {
        self.seen.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Waits until `n` shares satisfied the predicate.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        while self.count() < n {
            if Instant::now() > deadline {
                return Err(BenchError::Failed(format!(
                    "only {} of {n} shares got there in {limit:?}",
                    self.count()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// When each share satisfied the predicate, and how it looked then.
    pub fn seen(&self) -> HashMap<String, (Instant, OneTimeShare)> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
