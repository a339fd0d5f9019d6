//! Fast reconcile tests: [`reconcile`] against a Kubernetes API served in process (a
//! `tower-test` mock answered by a small fake, as kube-rs/controller-rs does with scripted
//! answers) and an in-process `ots-testserver`. No control plane; the whole module runs in
//! seconds under `cargo test --lib`.
//!
//! The fake keeps OneTimeShares, Secrets and Events and logs every call in order, so a test can
//! assert what was written and in which order (the finalizer first, one status write, no call
//! to the OTS server at all).

mod cases;

use super::{Context, reconcile};
use crate::config::{ControllerConfig, origin};
use crate::ots::ApiVersion;
use crate::resource::{OneTimeShare, OneTimeShareSpec, OneTimeShareStatus};
use crate::runtime::metrics::Metrics;
use crate::runtime::throttle::{Throttle, ThrottleConfig};
use http::{Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::controller::Action;
use ots_testserver::TestServer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The namespace the tests' OneTimeShares live in.
const NAMESPACE: &str = "team";
/// The operator's own namespace (share records).
const STATE_NAMESPACE: &str = "ots-system";

/// One request the fake API answered.
#[derive(Debug, Clone)]
pub(super) struct Call {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// JSON body (`Null` when none).
    pub body: Value,
}

impl Call {
    /// A status write of a OneTimeShare.
    fn is_status_write(&self) -> bool {
        self.method == "PATCH" && self.path.ends_with("/status")
    }
}

/// What the fake Kubernetes API holds.
#[derive(Default)]
pub(super) struct FakeApi {
    shares: BTreeMap<String, OneTimeShare>,
    secrets: BTreeMap<(String, String), Secret>,
    /// Every call, oldest first.
    pub calls: Vec<Call>,
    /// Events as published (created or patched).
    pub events: Vec<Value>,
    /// Status writes still to be answered 500 (an API server in trouble).
    pub failing_status_writes: u32,
    next_version: u64,
}

fn status_answer(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("test objects serialize")
}

impl FakeApi {
    fn version(&mut self) -> String {
        self.next_version += 1;
        self.next_version.to_string()
    }

    /// Answers one request like the API server would, for the calls reconcile makes.
    fn answer(&mut self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.calls.push(Call {
            method: method.to_owned(),
            path: path.to_owned(),
            body: body.clone(),
        });
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [
                "apis",
                "ots.dev",
                "v1alpha1",
                "namespaces",
                _,
                "onetimeshares",
                name,
                sub @ ..,
            ] => match sub {
                [] => self.patch_share(method, name, &body),
                ["status"] => self.patch_status(method, name, &body),
                _ => status_answer(404, "NotFound"),
            },
            ["api", "v1", "namespaces", ns, "secrets", name] => self.secret(method, ns, name, body),
            ["apis", "events.k8s.io", "v1", "namespaces", _, "events", ..] => {
                self.events.push(body.clone());
                (if method == "POST" { 201 } else { 200 }, body)
            }
            _ => status_answer(404, "NotFound"),
        }
    }

    /// The finalizer's JSON patch (`test` and `add`/`remove` on `/metadata/finalizers`).
    fn patch_share(&mut self, method: &str, name: &str, body: &Value) -> (u16, Value) {
        let version = self.version();
        let Some(share) = self.shares.get_mut(name) else {
            return status_answer(404, "NotFound");
        };
        if method != "PATCH" {
            return status_answer(405, "MethodNotAllowed");
        }
        let finalizers = share.metadata.finalizers.get_or_insert_with(Vec::new);
        for op in body.as_array().into_iter().flatten() {
            let path = op["path"].as_str().unwrap_or_default();
            match (op["op"].as_str(), path) {
                (Some("add"), "/metadata/finalizers") => {
                    *finalizers = serde_json::from_value(op["value"].clone()).unwrap_or_default();
                }
                (Some("add"), "/metadata/finalizers/-") => {
                    finalizers.push(op["value"].as_str().unwrap_or_default().to_owned());
                }
                (Some("remove"), p) if p.starts_with("/metadata/finalizers/") => {
                    let index: usize = p
                        .rsplit('/')
                        .next()
                        .and_then(|i| i.parse().ok())
                        .unwrap_or(0);
                    if index < finalizers.len() {
                        finalizers.remove(index);
                    }
                }
                _ => {}
            }
        }
        share.metadata.resource_version = Some(version);
        (200, to_json(&*share))
    }

    /// A server-side apply of `status`.
    fn patch_status(&mut self, method: &str, name: &str, body: &Value) -> (u16, Value) {
        let version = self.version();
        let Some(share) = self.shares.get_mut(name) else {
            return status_answer(404, "NotFound");
        };
        if method != "PATCH" {
            return status_answer(405, "MethodNotAllowed");
        }
        if self.failing_status_writes > 0 {
            self.failing_status_writes -= 1;
            return status_answer(500, "InternalError");
        }
        share.status = serde_json::from_value(body["status"].clone()).ok();
        share.metadata.resource_version = Some(version);
        (200, to_json(&*share))
    }

    fn secret(&mut self, method: &str, ns: &str, name: &str, body: Value) -> (u16, Value) {
        let key = (ns.to_owned(), name.to_owned());
        match method {
            "GET" => match self.secrets.get(&key) {
                Some(secret) => (200, to_json(secret)),
                None => status_answer(404, "NotFound"),
            },
            "PATCH" => {
                let Ok(mut secret) = serde_json::from_value::<Secret>(body) else {
                    return status_answer(400, "BadRequest");
                };
                secret.metadata.resource_version = Some(self.version());
                self.secrets.insert(key, secret.clone());
                (200, to_json(&secret))
            }
            "DELETE" => match self.secrets.remove(&key) {
                Some(secret) => (200, to_json(&secret)),
                None => status_answer(404, "NotFound"),
            },
            _ => status_answer(405, "MethodNotAllowed"),
        }
    }
}

/// Answers the mock's requests from `api` until the client is dropped.
async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    api: Arc<Mutex<FakeApi>>,
) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (code, answer) = api
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .answer(&method, &path, body);
        let response = Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
            .expect("a valid response");
        send.send_response(response);
    }
}

/// A controller context over the fake API and an in-process OTS test server.
pub(super) struct Harness {
    pub ctx: Arc<Context>,
    pub api: Arc<Mutex<FakeApi>>,
    pub ots: TestServer,
}

/// The settings of the tests' operator: the test server as the default server, anonymous.
fn test_config(ots: &TestServer) -> ControllerConfig {
    let url: url::Url = ots.url().parse().expect("the test server's URL");
    ControllerConfig {
        allowed_servers: vec![origin(&url)],
        ots_url: url,
        ots_api: ApiVersion::V2,
        credentials: None,
        namespaces: Vec::new(),
        refresh_min: Duration::from_secs(30),
        refresh_max: Duration::from_secs(900),
        burn_timeout: Duration::from_secs(300),
        ots_timeout: Duration::from_secs(5),
        concurrency: 4,
        concurrency_per_namespace: 2,
        state_namespace: STATE_NAMESPACE.to_owned(),
        admission_guard: true,
        max_live_shares_per_secret: 0,
        max_reissues_per_hour: 6,
        sweep_orphans: false,
        extra_roots: Vec::new(),
        sweep_interval: Duration::from_secs(300),
        sweep_grace: Duration::from_secs(600),
        max_secret_bytes: crate::ots::validate::MAX_SECRET_BYTES,
    }
}

impl Harness {
    /// A harness with the default test server and settings.
    pub async fn new() -> Self {
        Self::with(ots_testserver::Config::default(), |_| {}).await
    }

    /// A harness with the given test server and a change to the operator's settings.
    pub async fn with(
        server: ots_testserver::Config,
        configure: impl FnOnce(&mut ControllerConfig),
    ) -> Self {
        let ots = TestServer::start(server)
            .await
            .expect("the OTS test server starts");
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Arc::new(Mutex::new(FakeApi::default()));
        tokio::spawn(serve(handle, api.clone()));
        let client = kube::Client::new(mock, "default");
        let mut config = test_config(&ots);
        configure(&mut config);
        let metrics = Metrics::new();
        let throttle = Throttle::new(
            ThrottleConfig {
                rate: 1000.0,
                burst: 100,
                ..ThrottleConfig::default()
            },
            metrics.clone(),
        )
        .expect("a valid throttle");
        let ctx = Context::new(client, config, metrics, throttle, "test").expect("a context");
        Harness {
            ctx: Arc::new(ctx),
            api,
            ots,
        }
    }

    /// The fake API's state.
    pub fn api(&self) -> MutexGuard<'_, FakeApi> {
        self.api.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a OneTimeShare `name` with `spec` (JSON) and returns it as the watch would.
    pub fn create(&self, name: &str, spec: Value) -> Arc<OneTimeShare> {
        let spec: OneTimeShareSpec = serde_json::from_value(spec).expect("a valid spec");
        let mut share = OneTimeShare::new(name, spec);
        share.metadata.namespace = Some(NAMESPACE.to_owned());
        share.metadata.uid = Some(format!("uid-{name}"));
        share.metadata.generation = Some(1);
        let mut api = self.api();
        share.metadata.resource_version = Some(api.version());
        api.shares.insert(name.to_owned(), share.clone());
        Arc::new(share)
    }

    /// The OneTimeShare as the API server has it now.
    pub fn current(&self, name: &str) -> Arc<OneTimeShare> {
        Arc::new(self.api().shares[name].clone())
    }

    /// Changes the stored OneTimeShare (a user's edit) and returns it.
    pub fn edit(&self, name: &str, change: impl FnOnce(&mut OneTimeShare)) -> Arc<OneTimeShare> {
        let mut api = self.api();
        let version = api.version();
        let share = api.shares.get_mut(name).expect("the share exists");
        change(share);
        share.metadata.resource_version = Some(version);
        Arc::new(share.clone())
    }

    /// The stored status of `name`.
    pub fn status(&self, name: &str) -> OneTimeShareStatus {
        self.api().shares[name].status.clone().unwrap_or_default()
    }

    /// Creates a Secret of the tests' namespace with text values.
    pub fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.to_owned());
        secret.metadata.namespace = Some(NAMESPACE.to_owned());
        secret.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        let mut api = self.api();
        secret.metadata.resource_version = Some(api.version());
        api.secrets
            .insert((NAMESPACE.to_owned(), name.to_owned()), secret);
    }

    /// Whether the operator holds a record Secret for `name`.
    pub fn has_record(&self, name: &str) -> bool {
        self.api().secrets.contains_key(&(
            STATE_NAMESPACE.to_owned(),
            super::records::record_name(&format!("uid-{name}")),
        ))
    }

    /// The operator's record Secret for `name`, as text (its data decoded), empty when none.
    pub fn record_text(&self, name: &str) -> String {
        let key = (
            STATE_NAMESPACE.to_owned(),
            super::records::record_name(&format!("uid-{name}")),
        );
        self.api()
            .secrets
            .get(&key)
            .map(|secret| {
                let data = secret.data.clone().unwrap_or_default();
                let decoded: Vec<String> = data
                    .values()
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                    .collect();
                format!(
                    "{:?} {} {:?}",
                    secret.metadata,
                    decoded.join(" "),
                    secret.string_data
                )
            })
            .unwrap_or_default()
    }

    /// Reconciles `obj` once.
    pub async fn reconcile(&self, obj: &Arc<OneTimeShare>) -> Action {
        reconcile(obj.clone(), self.ctx.clone())
            .await
            .expect("reconcile turns errors into actions")
    }

    /// Calls made to the fake API so far.
    pub fn calls(&self) -> Vec<Call> {
        self.api().calls.clone()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.api().calls.clear();
    }

    /// Share calls the OTS server received.
    pub fn ots_shares(&self) -> usize {
        self.ots
            .requests()
            .iter()
            .filter(|r| r.operation == "share" || r.operation == "conceal")
            .count()
    }

    /// Events' (type, reason) in the order published.
    pub fn events(&self) -> Vec<(String, String)> {
        self.api()
            .events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The sample value of one metric series (name plus labels).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.ctx
            .metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

/// The Ready condition's (status, reason) of a status.
pub(super) fn ready(status: &OneTimeShareStatus) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}
