//! The status of OtsServers and ClusterOtsServers: whether each server answers, trusts its
//! credentials and is trusted, written as a `Ready` condition with a [`Reason`].
//!
//! A check, per server object: the URL against the allowlist (off it: never called), its
//! Secrets by targeted `get` (credentials, CA bundle), then the server's `status` route and the
//! credentials' check through the OTS throttle, as a share would make them. The operator never
//! watches Secrets, so a server's Secrets are read again every [`SECRET_POLL`] (one `get` each)
//! and the server is checked again when one of them, or the object, changed: a rotated token
//! works within seconds. Otherwise a server is checked again every [`RECHECK`] (sooner,
//! [`RETRY_UNAVAILABLE`], while it is unreachable or rate-limits).
//!
//! Nothing of a Secret's data reaches a log line, a status message or an error: messages name
//! Secrets and keys, never values.

use super::Context;
use crate::error::{Error, Reason};
use crate::ots::{ClientConfig, Credentials, OtsClient, OtsError, ResolvedApi, SecretString};
use crate::resource::server::{CredentialsSecretRef, ServerSettings};
use crate::resource::{ClusterOtsServer, OtsServer, OtsServerStatus, SecretKeyRef, ServerKind};
use crate::runtime::throttle::Wait;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often a server's Secrets are read again to notice a change (a rotated token).
pub const SECRET_POLL: Duration = Duration::from_secs(5);

/// Server objects checked at once, per kind. Unbounded, the Secret reads of 100 server objects
/// every [`SECRET_POLL`] went out together and kept ~70 idle apiserver connections (and their
/// buffers, ~60 KiB each) alive; a check waiting on a slow server holds a slot for at most the
/// OTS timeout, and checks of an unchanged server are minutes apart.
const CONCURRENT_CHECKS: u16 = 16;

/// How often a server is checked again when nothing changed.
pub const RECHECK: Duration = Duration::from_secs(300);

/// How soon an unreachable (or rate-limiting) server is checked again.
pub const RETRY_UNAVAILABLE: Duration = Duration::from_secs(30);

/// How often a server object's live-share count is brought up to date (from the watch cache).
pub const LIVE_SHARES_REFRESH: Duration = Duration::from_secs(15);

/// The field manager of server status writes.
const FIELD_MANAGER: &str = "ots-operator-servers";

/// A kind of server object: what a check needs to know of it.
pub trait ServerObject:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The kind, for logs.
    const KIND: &'static str;
    /// The kind as `spec.serverRef` names it.
    const REF_KIND: ServerKind;
    /// Whether shares that name no server use it (the default ClusterOtsServer).
    fn serves_unnamed(&self) -> bool;
    /// The server, its credentials, trust and policy.
    fn settings(&self) -> &ServerSettings;
    /// What the operator last wrote.
    fn server_status(&self) -> Option<&OtsServerStatus>;
    /// Where its Secrets live: its own namespace, or the operator's for a cluster kind.
    fn secrets_namespace<'a>(&'a self, operator_namespace: &'a str) -> &'a str;
    /// The API its status is written through.
    fn status_api(&self, client: Client) -> Api<Self>;
}

impl ServerObject for OtsServer {
    const KIND: &'static str = "OtsServer";
    const REF_KIND: ServerKind = ServerKind::OtsServer;
    fn serves_unnamed(&self) -> bool {
        false
    }
    fn settings(&self) -> &ServerSettings {
        &self.spec.settings
    }
    fn server_status(&self) -> Option<&OtsServerStatus> {
        self.status.as_ref()
    }
    fn secrets_namespace<'a>(&'a self, operator_namespace: &'a str) -> &'a str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(operator_namespace)
    }
    fn status_api(&self, client: Client) -> Api<Self> {
        match self.metadata.namespace.as_deref() {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::default_namespaced(client),
        }
    }
}

impl ServerObject for ClusterOtsServer {
    const KIND: &'static str = "ClusterOtsServer";
    const REF_KIND: ServerKind = ServerKind::ClusterOtsServer;
    fn serves_unnamed(&self) -> bool {
        self.is_default()
    }
    fn settings(&self) -> &ServerSettings {
        &self.spec.settings
    }
    fn server_status(&self) -> Option<&OtsServerStatus> {
        self.status.as_ref()
    }
    fn secrets_namespace<'a>(&'a self, operator_namespace: &'a str) -> &'a str {
        operator_namespace
    }
    fn status_api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

/// What a check found: Ready or why not, and the API version in use.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the server works with these credentials.
    pub ready: bool,
    /// Why (the Ready condition's reason).
    pub reason: Reason,
    /// What to do about it; never a Secret's data.
    pub message: String,
    /// The API version resolved, when the server answered.
    pub api: Option<ResolvedApi>,
}

impl Verdict {
    fn not_ready(reason: Reason, message: impl Into<String>) -> Self {
        Verdict {
            ready: false,
            reason,
            message: message.into(),
            api: None,
        }
    }

    /// How soon to check again when nothing changes.
    fn recheck_after(&self) -> Duration {
        match self.reason {
            Reason::ServerUnavailable | Reason::RateLimited | Reason::KubernetesError => {
                RETRY_UNAVAILABLE
            }
            _ => RECHECK,
        }
    }
}

/// What a server object's check depended on: when any of it changes, the server is checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    generation: Option<i64>,
    url: String,
    /// resourceVersions of the credentials and CA Secrets (`None`: not named or missing).
    credentials_version: Option<String>,
    ca_version: Option<String>,
}

/// The last check of a server object.
#[derive(Debug, Clone)]
struct Checked {
    inputs: Inputs,
    verdict: Verdict,
    at: Instant,
}

/// The server status controller's state, shared by its reconciles.
pub struct ServerStatus {
    ctx: Arc<Context>,
    /// The last check per object uid.
    checked: Mutex<HashMap<String, Checked>>,
}

/// What was read from a server's Secrets.
struct SecretInputs {
    credentials: Option<Credentials>,
    ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    credentials_version: Option<String>,
    ca_version: Option<String>,
}

impl ServerStatus {
    /// A controller state over the operator's context (its settings, throttle and allowlist).
    pub fn new(ctx: Arc<Context>) -> Self {
        ServerStatus {
            ctx,
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// Checks one server object if something changed or a check is due, and writes its status.
    pub async fn reconcile<K: ServerObject>(&self, obj: Arc<K>) -> Result<Action, Error> {
        let uid = obj.uid().unwrap_or_default();
        let settings = obj.settings();
        // Its rateLimit holds from the moment the object is seen, whatever the check finds.
        super::server_ref::register_rate(&self.ctx, &uid, obj.namespace().as_deref(), settings);
        let operator_namespace = self.ctx.config.state_namespace.as_str();
        let namespace = obj.secrets_namespace(operator_namespace).to_owned();
        let polls_secrets =
            settings.credentials_secret_ref.is_some() || settings.ca_bundle_secret_ref.is_some();
        // Off the allowlist: nothing is read or called.
        let read = match self.ctx.servers.allowed(&settings.url) {
            Err(e) => Err(Verdict::not_ready(e.reason(), e.to_string())),
            Ok(_) => self.read_secrets(settings, &namespace).await,
        };
        let (read, inputs) = match read {
            Ok(read) => {
                let inputs = Inputs {
                    generation: obj.meta().generation,
                    url: settings.url.clone(),
                    credentials_version: read.credentials_version.clone(),
                    ca_version: read.ca_version.clone(),
                };
                (Ok(read), inputs)
            }
            Err(verdict) => {
                let inputs = Inputs {
                    generation: obj.meta().generation,
                    url: settings.url.clone(),
                    credentials_version: None,
                    ca_version: None,
                };
                (Err(verdict), inputs)
            }
        };
        let previous = self.last_check(&uid);
        let due = match &previous {
            Some(last) => {
                last.inputs != inputs || last.at.elapsed() >= last.verdict.recheck_after()
            }
            None => true,
        };
        let published = obj.server_status().is_some_and(|status| {
            status.observed_generation == obj.meta().generation
                && previous
                    .as_ref()
                    .is_some_and(|last| shows(status, &last.verdict))
        });
        let live = self.live_shares(&*obj);
        if !due
            && published
            && let Some(last) = &previous
        {
            // Nothing to check; the live-share count may still have moved.
            let shown = obj.server_status().and_then(|s| s.live_shares);
            if live.is_some() && live != shown {
                self.write_status(&*obj, &last.verdict, live, false).await?;
            }
            return Ok(next_visit(polls_secrets, previous.as_ref()));
        }
        let verdict = match read {
            Err(verdict) => verdict,
            // An OtsServer's CA is trusted for its namespace's recorded links (see `Servers`).
            Ok(read) => {
                self.check(settings, read, obj.meta().namespace.as_deref())
                    .await
            }
        };
        let changed = previous.as_ref().is_none_or(|last| {
            last.verdict.ready != verdict.ready || last.verdict.reason != verdict.reason
        });
        if changed {
            log_verdict::<K>(&obj, &verdict);
        }
        // An Event when what the object shows changes (not again after a restart).
        if !obj.server_status().is_some_and(|s| shows(s, &verdict)) {
            let kind = if verdict.ready {
                kube::runtime::events::EventType::Normal
            } else {
                kube::runtime::events::EventType::Warning
            };
            super::events::publish_check(
                &self.ctx.recorder,
                &*obj,
                kind,
                verdict.reason,
                verdict.message.clone(),
            )
            .await;
        }
        self.write_status(&*obj, &verdict, live, true).await?;
        let checked = Checked {
            inputs,
            verdict,
            at: Instant::now(),
        };
        let action = next_visit(polls_secrets, Some(&checked));
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, checked);
        Ok(action)
    }

    /// Live links (phase Shared) of the shares that use a server object, from the watch cache
    /// (no API call): those that name it in serverRef, and for the default ClusterOtsServer those
    /// that name no server and were shared to its URL. `None` until the cache is complete.
    fn live_shares<K: ServerObject>(&self, obj: &K) -> Option<i64> {
        if !self
            .ctx
            .caches_ready
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let stores = self.ctx.stores.get()?;
        let name = obj.name_any();
        let namespace = obj.meta().namespace.as_deref();
        let url = obj.settings().url.trim_end_matches('/');
        let unnamed = obj.serves_unnamed();
        let by_ref = super::cached::server_ref_digest(K::REF_KIND, &name);
        let by_url = super::cached::server_url_digest(url);
        let mut live = 0;
        for store in stores {
            for watched in store.state() {
                // Selected by the cached facts; only this server's shares are unpacked.
                let facts = watched.facts();
                if facts.phase != crate::resource::Phase::Shared
                    || !(facts.server == by_ref || (unnamed && facts.server == by_url))
                {
                    continue;
                }
                let Ok(share) = watched.share() else { continue };
                let Some(status) = &share.status else {
                    continue;
                };
                let uses = match &share.spec.server_ref {
                    Some(reference) => {
                        reference.kind == K::REF_KIND
                            && reference.name == name
                            && namespace
                                .is_none_or(|ns| share.metadata.namespace.as_deref() == Some(ns))
                    }
                    None => {
                        unnamed
                            && share.spec.server.is_none()
                            && status.server_url.as_deref() == Some(url)
                    }
                };
                if uses {
                    live += 1;
                }
            }
        }
        Some(live)
    }

    fn last_check(&self, uid: &str) -> Option<Checked> {
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    /// Forgets a deleted object's last check and the limit it set.
    fn forget(&self, uid: &str) {
        self.ctx.throttle.set_server_rate(uid, "", None, None);
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// Reads the credentials and the CA bundle a server names, by targeted `get`.
    async fn read_secrets(
        &self,
        settings: &ServerSettings,
        namespace: &str,
    ) -> Result<SecretInputs, Verdict> {
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), namespace);
        let (credentials, credentials_version) = match &settings.credentials_secret_ref {
            None => (None, None),
            Some(reference) => {
                let (credentials, version) =
                    read_credentials(&secrets, namespace, reference).await?;
                (Some(credentials), Some(version))
            }
        };
        let (ca, ca_version) = match &settings.ca_bundle_secret_ref {
            None => (None, None),
            Some(reference) => {
                let (ca, version) = read_ca(&secrets, namespace, reference).await?;
                (Some(ca), Some(version))
            }
        };
        Ok(SecretInputs {
            credentials,
            ca,
            credentials_version,
            ca_version,
        })
    }

    /// Asks the server: its status route (the API version on the way), then the credentials.
    /// A URL off the allowlist is never called.
    async fn check(
        &self,
        settings: &ServerSettings,
        read: SecretInputs,
        trusted_by: Option<&str>,
    ) -> Verdict {
        let url = match self.ctx.servers.allowed(&settings.url) {
            Ok(url) => url,
            Err(e) => return Verdict::not_ready(e.reason(), e.to_string()),
        };
        let http = match read.ca {
            None => self.ctx.servers.http(),
            Some(roots) => match self.ctx.servers.trust(trusted_by, url.as_str(), &roots) {
                Ok(http) => http,
                Err(e) => return Verdict::not_ready(e.reason(), e.to_string()),
            },
        };
        let mut config = ClientConfig::new(url)
            .with_timeout(self.ctx.config.ots_timeout)
            .with_max_secret_bytes(self.ctx.config.max_secret_bytes)
            .with_api(settings.api.into());
        let authenticated = read.credentials.is_some();
        if let Some(credentials) = read.credentials {
            config = config.with_credentials(credentials);
        }
        let client = match OtsClient::with_http(config, http) {
            Ok(client) => client,
            Err(e) => return verdict_of(e),
        };
        let server = settings.url.trim_end_matches('/').to_owned();
        if let Err(e) = self
            .ctx
            .throttle
            .call(&server, "status", Wait, client.status())
            .await
        {
            return verdict_of(e);
        }
        if authenticated
            && let Err(e) = self
                .ctx
                .throttle
                .call(&server, "verify", Wait, client.verify_credentials())
                .await
        {
            return verdict_of(e);
        }
        let api = client.learned_api();
        if let Some(domain) = &settings.share_domain
            && api == Some(ResolvedApi::V1)
        {
            // Its shares would fail: v1 cannot put a link on a share domain.
            return Verdict {
                api,
                ..Verdict::not_ready(
                    Reason::ShareDomainRefused,
                    format!(
                        "the server speaks API v1, which cannot put links on shareDomain {domain:?}: its shares fail with ShareDomainRefused (use API v2, or remove shareDomain)"
                    ),
                )
            };
        }
        let api_text = api.map(|a| a.as_str()).unwrap_or("unknown");
        Verdict {
            ready: true,
            reason: Reason::Verified,
            message: if authenticated {
                format!("the server answers on API {api_text} and accepts the credentials")
            } else {
                format!("the server answers on API {api_text} (anonymous use: no credentials)")
            },
            api,
        }
    }

    /// Writes status: Ready with the verdict, the API version, the generation checked.
    async fn write_status<K: ServerObject>(
        &self,
        obj: &K,
        verdict: &Verdict,
        live: Option<i64>,
        checked_now: bool,
    ) -> Result<(), Error> {
        let now = super::now();
        let previous = obj
            .server_status()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        let value = if verdict.ready { "True" } else { "False" };
        let last_transition_time = match previous {
            Some(c) if c.status == value => c.last_transition_time.clone(),
            _ => Time(now),
        };
        let status = OtsServerStatus {
            observed_generation: obj.meta().generation,
            api: verdict
                .api
                .map(|a| a.as_str().to_owned())
                .or_else(|| obj.server_status().and_then(|s| s.api.clone())),
            live_shares: live.or_else(|| obj.server_status().and_then(|s| s.live_shares)),
            last_checked_at: if checked_now {
                Some(Time(now))
            } else {
                obj.server_status().and_then(|s| s.last_checked_at.clone())
            },
            conditions: vec![Condition {
                type_: "Ready".to_owned(),
                status: value.to_owned(),
                reason: verdict.reason.as_str().to_owned(),
                message: verdict.message.chars().take(1024).collect(),
                observed_generation: obj.meta().generation,
                last_transition_time,
            }],
        };
        let patch = serde_json::json!({ "status": status });
        obj.status_api(self.ctx.client.clone())
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }
}

/// Whether a written status shows a verdict (so nothing needs writing).
fn shows(status: &OtsServerStatus, verdict: &Verdict) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == "Ready"
            && c.status == if verdict.ready { "True" } else { "False" }
            && c.reason == verdict.reason.as_str()
    })
}

/// When to look at a server object again: soon enough to notice a changed Secret, and when its
/// next check is due.
fn next_visit(polls_secrets: bool, last: Option<&Checked>) -> Action {
    let due_in = last
        .map(|c| c.verdict.recheck_after().saturating_sub(c.at.elapsed()))
        .unwrap_or(SECRET_POLL);
    let wait = if polls_secrets {
        due_in.min(SECRET_POLL)
    } else {
        due_in
    };
    Action::requeue(wait.clamp(Duration::from_secs(1), LIVE_SHARES_REFRESH))
}

fn log_verdict<K: ServerObject>(obj: &K, verdict: &Verdict) {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    if verdict.ready {
        tracing::info!(kind = K::KIND, %namespace, %name, reason = %verdict.reason, "server ready");
    } else {
        tracing::warn!(
            kind = K::KIND,
            %namespace,
            %name,
            reason = %verdict.reason,
            message = %verdict.message,
            "server not ready"
        );
    }
}

/// The verdict on a failed call.
fn verdict_of(error: OtsError) -> Verdict {
    let error = Error::from(error);
    Verdict::not_ready(error.reason(), error.to_string())
}

/// The credentials a server names, and the Secret's resourceVersion.
async fn read_credentials(
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &CredentialsSecretRef,
) -> Result<(Credentials, String), Verdict> {
    let secret = get_secret(
        secrets,
        namespace,
        &reference.name,
        Reason::CredentialsNotFound,
    )
    .await?;
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| std::str::from_utf8(&v.0).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Verdict::not_ready(
                    Reason::CredentialsNotFound,
                    format!(
                        "credentials Secret {:?} in namespace {namespace:?} has no key {key:?} (or its value is empty or not text)",
                        reference.name
                    ),
                )
            })
    };
    let username = text(&reference.username_key)?;
    let token = text(&reference.api_token_key)?;
    Ok((
        Credentials::new(username, SecretString::from(token)),
        version,
    ))
}

/// The CA certificates a server names, and the Secret's resourceVersion.
async fn read_ca(
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<(Vec<rustls::pki_types::CertificateDer<'static>>, String), Verdict> {
    use rustls::pki_types::pem::PemObject;
    let secret = get_secret(secrets, namespace, &reference.name, Reason::SecretNotFound).await?;
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    let pem = secret
        .data
        .unwrap_or_default()
        .remove(&reference.key)
        .ok_or_else(|| {
            Verdict::not_ready(
                Reason::KeyNotFound,
                format!(
                    "CA bundle Secret {:?} in namespace {namespace:?} has no key {:?}",
                    reference.name, reference.key
                ),
            )
        })?;
    let not_pem = || {
        Verdict::not_ready(
            Reason::InvalidSpec,
            format!(
                "key {:?} of CA bundle Secret {:?} in namespace {namespace:?} holds no PEM certificate",
                reference.key, reference.name
            ),
        )
    };
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem.0)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| not_pem())?;
    if certs.is_empty() {
        return Err(not_pem());
    }
    Ok((certs, version))
}

async fn get_secret(
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
    missing: Reason,
) -> Result<Secret, Verdict> {
    match secrets.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => Err(Verdict::not_ready(
            missing,
            format!(
                "Secret {name:?} not found in namespace {namespace:?}; the server is checked again once it exists"
            ),
        )),
        Err(e) => Err(Verdict::not_ready(
            Reason::KubernetesError,
            format!("cannot read Secret {name:?} in namespace {namespace:?}: {e}"),
        )),
    }
}

/// Runs the status controllers of OtsServers (in the watched namespaces) and ClusterOtsServers
/// until `shutdown`. A missing CRD or a watch error is logged and retried with backoff; it never
/// stops the OneTimeShare controller.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let state = Arc::new(ServerStatus::new(ctx.clone()));
    let namespaced: Vec<Api<OtsServer>> = if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let mut runs = Vec::new();
    let mut namespaced_stores = Vec::new();
    for api in namespaced {
        let controller = lean_controller(api);
        namespaced_stores.push(controller.store());
        runs.push(run_controller(controller, state.clone(), shutdown.clone()).boxed());
    }
    let cluster = lean_controller(Api::<ClusterOtsServer>::all(ctx.client.clone()));
    // Shares read the default server and their ClusterOtsServers from this cache.
    let _ = ctx.cluster_servers.set(cluster.store());
    let rates = drop_rates_of_deleted(ctx.clone(), namespaced_stores, cluster.store());
    runs.push(run_controller(cluster, state, shutdown.clone()).boxed());
    // kube's graceful shutdown does not end a controller whose watch keeps failing (its CRD
    // not installed: an image upgraded alone, or only the OneTimeShare CRD applied): the checks
    // in flight get a few seconds after the signal, then the controllers end regardless.
    tokio::select! {
        _ = futures::future::join_all(runs) => {}
        () = async {
            shutdown.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
        () = rates => {}
    }
}

/// Drops the `rateLimit` of server objects that are gone, every [`SECRET_POLL`] once the watch
/// caches have listed them (a deleted object without a finalizer is never reconciled again).
async fn drop_rates_of_deleted(
    ctx: Arc<Context>,
    namespaced: Vec<kube::runtime::reflector::Store<OtsServer>>,
    cluster: kube::runtime::reflector::Store<ClusterOtsServer>,
) {
    let listed = futures::future::join_all(namespaced.iter().map(|s| s.wait_until_ready()));
    let (listed, cluster_listed) = futures::join!(listed, cluster.wait_until_ready());
    if cluster_listed.is_err() || listed.iter().any(Result::is_err) {
        return std::future::pending().await;
    }
    loop {
        let mut present: std::collections::HashSet<String> =
            cluster.state().iter().filter_map(|o| o.uid()).collect();
        for store in &namespaced {
            present.extend(store.state().iter().filter_map(|o| o.uid()));
        }
        ctx.throttle
            .retain_server_rates(|owner| present.contains(owner));
        tokio::time::sleep(SECRET_POLL).await;
    }
}

/// How long server checks in flight may take to finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs one kind's controller. A failure (a missing CRD, a watch or status write refused) is
/// logged as a warning once, then at debug level until something works again: the watch retries
/// with kube's backoff (at most every 30 s), which must not flood the log.
/// A controller over `api` (as `Controller::new` makes it) whose cache drops managedFields:
/// every client that writes a server object adds to them (the operator's status writes too),
/// they are most of its size, and nothing here reads them.
fn lean_controller<K: ServerObject>(api: Api<K>) -> Controller<K> {
    use kube::runtime::{WatchStreamExt, reflector};
    let (store, writer) = reflector::store();
    let objects = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, store)
}

async fn run_controller<K: ServerObject>(
    controller: Controller<K>,
    state: Arc<ServerStatus>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ctx = state.ctx.clone();
    let mut results = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENT_CHECKS))
        .graceful_shutdown_on(shutdown)
        .run(
            |obj: Arc<K>, state: Arc<ServerStatus>| async move {
                if obj.meta().deletion_timestamp.is_some() {
                    state.forget(&obj.uid().unwrap_or_default());
                    return Ok(Action::await_change());
                }
                state.reconcile(obj).await
            },
            |_obj: Arc<K>, _error: &Error, _state: Arc<ServerStatus>| {
                Action::requeue(Duration::from_secs(5))
            },
            state,
        )
        .boxed();
    let mut failing = false;
    while let Some(result) = results.next().await {
        match result {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(kind = K::KIND, "server status controller works again");
            }
            Ok(_) => {}
            Err(e) if failing => {
                tracing::debug!(kind = K::KIND, error = %e, "server status controller");
            }
            Err(e) => {
                failing = true;
                if K::REF_KIND == ServerKind::ClusterOtsServer {
                    // Shares without a server stop waiting for a list that may not come.
                    ctx.cluster_servers_unlisted
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::warn!(
                    kind = K::KIND,
                    error = %e,
                    "server status controller failed (is the CRD installed?); retrying with backoff"
                );
            }
        }
    }
}
