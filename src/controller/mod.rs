//! The OneTimeShare controller: share a Secret once, track its link, burn it on deletion.
//!
//! Data flows one way: watch event → reconcile reads the Secret → OTS client → status write.
//! [`reconcile`] tells the whole story of an object; each step lives in its own module.

mod cleanup;
mod memory;
mod servers;
mod share;
mod status;
mod track;
pub mod value;

use crate::config::ControllerConfig;
use crate::error::{Error, Reason};
use crate::metrics::{Metrics, ReconcileResult, StatusClass};
use crate::ots::OtsError;
use crate::resource::{DeletionPolicy, FINALIZER, OneTimeShare, OneTimeShareStatus};
use crate::throttle::Throttle;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use memory::Memory;
pub use servers::{Server, Servers};

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Settings.
    pub config: ControllerConfig,
    /// OTS servers and clients.
    pub servers: Servers,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Rate limit and in-flight bound for OTS calls.
    pub throttle: Throttle,
    /// Per-resource memory.
    pub memory: Memory,
    /// Live links (phase Shared) in the watch cache, refreshed every few seconds.
    live_links: std::sync::atomic::AtomicUsize,
}

impl Context {
    /// A context for the given settings.
    pub fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Metrics,
        throttle: Throttle,
        identity: &str,
    ) -> Result<Self, Error> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "ots-operator".into(),
                instance: Some(identity.to_owned()),
            },
        );
        Ok(Context {
            servers: Servers::new(&config, throttle.clone())?,
            client,
            recorder,
            config,
            metrics,
            throttle,
            memory: Memory::default(),
            live_links: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Runs one OTS call through the throttle and records its outcome.
    async fn ots<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, OtsError>>,
    ) -> Result<T, OtsError> {
        self.throttle.run(operation, call).await
    }

    /// The polling interval bounds for link checks: the configured ones, stretched so that all
    /// live links together use at most half of `--ots-rate`, leaving the rest to shares and burns.
    fn refresh_bounds(&self) -> (Duration, Duration) {
        let live = self.live_links.load(std::sync::atomic::Ordering::Relaxed);
        let floor = Duration::from_secs_f64(live as f64 / (0.5 * self.config.ots_rate));
        (
            self.config.refresh_min.max(floor),
            self.config.refresh_max.max(floor),
        )
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    async fn event(&self, obj: &OneTimeShare, kind: EventType, reason: Reason, note: String) {
        let event = KubeEvent {
            type_: kind,
            reason: reason.as_str().to_owned(),
            note: Some(note),
            action: action_of(reason).to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason = reason.as_str(), "could not publish event");
        }
    }

    /// The server that holds a resource's link (status wins over spec), with its credentials.
    async fn link_server(
        &self,
        obj: &OneTimeShare,
        status: &OneTimeShareStatus,
    ) -> Result<Server, Error> {
        let secrets = self.secrets(&obj.namespace().unwrap_or_default());
        self.servers
            .resolve(
                &secrets,
                obj.spec.server.as_ref(),
                status.server_url.as_deref(),
            )
            .await
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn shares(&self, namespace: &str) -> Api<OneTimeShare> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn action_of(reason: Reason) -> &'static str {
    match reason {
        Reason::Burned | Reason::BurnFailed => "Burn",
        Reason::Received | Reason::Expired => "Track",
        Reason::Reshared => "Reshare",
        _ => "Share",
    }
}

/// A timestamp at whole seconds, as the API server stores times.
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

impl crate::throttle::UpstreamFailure for OtsError {
    fn retry_after(&self) -> Option<Duration> {
        OtsError::retry_after(self)
    }

    fn status_class(&self) -> StatusClass {
        match self {
            OtsError::RateLimited { .. } => StatusClass::RateLimited,
            OtsError::Unavailable { .. } => StatusClass::ServerError,
            OtsError::NotFound
            | OtsError::RouteNotFound { .. }
            | OtsError::Unauthorized
            | OtsError::EntitlementRequired { .. }
            | OtsError::GuestRoutesDisabled
            | OtsError::Forbidden { .. }
            | OtsError::SecretTooLarge { .. }
            | OtsError::PassphraseRefused { .. }
            | OtsError::Validation { .. } => StatusClass::ClientError,
            OtsError::Refused { .. }
            | OtsError::BurnUnconfirmed { .. }
            | OtsError::Protocol { .. }
            | OtsError::InvalidInput(_)
            | OtsError::Setup { .. } => StatusClass::Other,
        }
    }
}

/// Reconciles one OneTimeShare. Errors are turned into a Ready=False condition, a Warning Event
/// and a backoff here, so the runtime only sees actions.
pub async fn reconcile(obj: Arc<OneTimeShare>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let uid = obj.uid().unwrap_or_default();
    let api = ctx.shares(&namespace);

    let uses_finalizer = obj.spec.deletion_policy == DeletionPolicy::Burn
        || obj.finalizers().iter().any(|f| f == FINALIZER);
    let outcome = if uses_finalizer {
        finalizer(&api, FINALIZER, obj.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(o) => apply(&o, &ctx).await,
                FinalizerEvent::Cleanup(o) => cleanup::cleanup(&o, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::InvalidSpec(other.to_string()),
        })
    } else if obj.meta().deletion_timestamp.is_some() {
        Ok(Action::await_change())
    } else {
        apply(&obj, &ctx).await
    };

    let action = match outcome {
        Ok(action) => {
            ctx.memory.succeeded(&uid);
            ctx.metrics
                .reconcile_done(ReconcileResult::Ok, "Ok", started.elapsed());
            action
        }
        Err(error) => {
            let reason = error.reason();
            tracing::info!(
                object = %kube::runtime::reflector::ObjectRef::from_obj(&*obj),
                reason = reason.as_str(),
                error = %error,
                "reconcile failed"
            );
            report_error(&obj, &api, &error, &ctx).await;
            ctx.metrics
                .reconcile_done(ReconcileResult::Error, reason.as_str(), started.elapsed());
            match ctx.memory.failed(&uid, error.retry(), error.retry_after()) {
                Some(wait) => Action::requeue(wait),
                None => Action::await_change(),
            }
        }
    };
    tracing::debug!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(&*obj),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    Ok(action)
}

/// The desired state of a live resource: shared once, then tracked.
async fn apply(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let status = ctx.memory.effective(&uid, obj.status.as_ref());
    match status {
        Some(status) if status.metadata_key.is_some() => track::track(obj, status, ctx).await,
        _ => share::share(obj, ctx).await,
    }
}

/// Shows an error to the user: Ready=False (when it changed) and a Warning Event (when new).
async fn report_error(obj: &OneTimeShare, api: &Api<OneTimeShare>, error: &Error, ctx: &Context) {
    let uid = obj.uid().unwrap_or_default();
    let current = ctx
        .memory
        .effective(&uid, obj.status.as_ref())
        .unwrap_or_default();
    // With a live link the status stays as it is; the Event tells about the failed check.
    let no_link_or_deleting =
        current.metadata_key.is_none() || obj.meta().deletion_timestamp.is_some();
    if no_link_or_deleting && let Some(next) = status::error_status(obj, &current, error, now()) {
        ctx.memory.wrote(&uid, &next);
        if let Err(e) = status::write_status(api, obj, &next).await {
            tracing::warn!(error = %e, "could not write the error to status");
        }
    }
    if ctx.memory.should_warn(&uid, error.reason()) {
        ctx.event(obj, EventType::Warning, error.reason(), error.to_string())
            .await;
    }
}

/// Writes `status` and remembers it, so a stale cache never hides it.
async fn save(obj: &OneTimeShare, ctx: &Context, status: &OneTimeShareStatus) -> Result<(), Error> {
    let uid = obj.uid().unwrap_or_default();
    ctx.memory.wrote(&uid, status);
    let api = ctx.shares(&obj.namespace().unwrap_or_default());
    status::write_status(&api, obj, status).await
}

/// Drops the parts of a cached object that reconciling never reads.
fn slim(obj: &mut OneTimeShare) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The error policy for errors that escape [`reconcile`] (none do today): back off.
fn error_policy(_obj: Arc<OneTimeShare>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(memory::jitter(Duration::from_secs(5)))
}

/// Runs the controller over the configured namespaces until `shutdown` completes; then waits for
/// running reconciles to finish. `on_ready` is called once every watch has listed its objects.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
    on_ready: impl Fn() + Send + Sync + 'static,
) {
    let namespaces: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    let on_ready = Arc::new(on_ready);
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for namespace in namespaces {
        let api: Api<OneTimeShare> = match &namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        let (store, writer) = reflector::store();
        // The cache keeps only what reconciling needs: managedFields and kubectl's
        // last-applied annotation are most of an object's size and none of its meaning.
        let objects = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(slim)
            .reflect(writer)
            .applied_objects();
        let controller = Controller::for_stream(objects, store.clone())
            .with_config(RuntimeConfig::default().concurrency(ctx.config.concurrency))
            .graceful_shutdown_on(shutdown.clone());
        stores.push(store);
        let run = controller
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        runs.push(run);
    }
    let ready_stores = stores.clone();
    let readiness = async move {
        for store in &ready_stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        on_ready();
    };
    let phases = housekeeping(stores, ctx.clone(), shutdown.clone());
    tokio::join!(futures::future::join_all(runs), readiness, phases);
}

/// Every few seconds, from the watch cache (no API calls): keeps the per-phase gauge current and
/// forgets resources that are gone.
async fn housekeeping(
    stores: Vec<kube::runtime::reflector::Store<OneTimeShare>>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()>,
) {
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let mut counts: std::collections::HashMap<_, i64> = crate::resource::Phase::ALL
                .into_iter()
                .map(|p| (p, 0))
                .collect();
            let mut live = std::collections::HashSet::new();
            for store in &stores {
                for obj in store.state() {
                    let phase = obj.status.as_ref().map(|s| s.phase).unwrap_or_default();
                    *counts.entry(phase).or_default() += 1;
                    if let Some(uid) = obj.uid() {
                        live.insert(uid);
                    }
                }
            }
            ctx.metrics
                .set_phase_counts(counts.iter().map(|(p, n)| (p.as_str(), *n)));
            ctx.memory.retain(&live);
            let shared = counts
                .get(&crate::resource::Phase::Shared)
                .copied()
                .unwrap_or(0);
            ctx.live_links
                .store(shared.max(0) as usize, std::sync::atomic::Ordering::Relaxed);
        }
    };
    tokio::select! {
        _ = work => {}
        _ = shutdown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_warning_reason_has_an_action() {
        assert_eq!(action_of(Reason::BurnFailed), "Burn");
        assert_eq!(action_of(Reason::SecretNotFound), "Share");
        assert_eq!(action_of(Reason::Reshared), "Reshare");
    }
}
