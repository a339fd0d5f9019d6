//! `ots-operator run`: wires configuration, clients, the HTTP endpoints and the controller, and
//! shuts down gracefully on SIGTERM or SIGINT.

use crate::config::RunArgs;
use crate::controller::notifications::Notifier;
use crate::controller::{self, Context};
use crate::runtime::http::{self, HttpState};
use crate::runtime::leader::{LeaderElector, LeaseConfig};
use crate::runtime::metrics::Metrics;
use crate::runtime::readiness::{LeaderState, Readiness};
use crate::runtime::throttle::{Throttle, ThrottleConfig};
use crate::telemetry;
use futures::FutureExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad flags or environment.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// No usable Kubernetes configuration, or the API server refused us.
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The metrics address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another replica took the lease; a restart campaigns again.
    #[error("lost the leader lease; exiting so that a restart campaigns again")]
    LostLease,
    /// The controller could not be set up.
    #[error(transparent)]
    Controller(#[from] crate::error::Error),
}

/// A future that completes on SIGTERM or SIGINT; clones complete together.
pub type Shutdown = futures::future::Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Completes when the process is asked to stop.
pub fn shutdown_signal() -> Shutdown {
    let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
    });
    signal.shared()
}

/// Runs the operator until a shutdown signal.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init(args.log_format)?;
    // kube and the OTS client both use rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = args.controller_config().map_err(RunError::Config)?;
    // A bad --allow-notification-url stops the start, before any delivery needs it.
    let notification_config = args.notification_config().map_err(RunError::Config)?;
    // Inferred here, before the client is built, to keep the cluster URL: its host is among
    // those the notifications refuse.
    let kube_config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let cluster_url = kube_config.cluster_url.to_string();
    let client = crate::runtime::kube_client::from_config(kube_config)?;
    let metrics = Metrics::new();
    let readiness = Readiness::new(args.leader_elect);
    let throttle = Throttle::new(
        ThrottleConfig {
            rate: args.ots_rate,
            burst: args.ots_burst,
            max_in_flight: args.ots_max_in_flight,
            ..ThrottleConfig::default()
        },
        metrics.clone(),
    )
    .map_err(|e| RunError::Config(e.to_string()))?;
    let identity = identity(&args);
    let shutdown = shutdown_signal();

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.metrics_addr,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    let server = tokio::spawn(http::serve(
        listener,
        HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        },
        shutdown.clone(),
    ));

    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        server = %config.ots_url,
        namespaces = ?config.namespaces,
        leader_elect = args.leader_elect,
        "starting"
    );
    let elector = args.leader_elect.then(|| {
        let namespace = args
            .leader_elect_namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let elector = LeaderElector::new(
            client.clone(),
            LeaseConfig::new(namespace, args.leader_elect_lease.clone(), identity.clone())
                .with_lease_duration(args.leader_elect_lease_duration),
        );
        tokio::spawn(publish_leadership(
            elector.state(),
            elector.leading(),
            readiness.clone(),
            metrics.clone(),
        ));
        elector
    });
    // The apiserver's own addresses are refused to notifications whatever else is allowed.
    let refused = match url::Url::parse(&cluster_url) {
        Ok(url) => Notifier::apiserver_addresses(&client, &url).await,
        Err(_) => Vec::new(),
    };
    let notifier = Notifier::new(
        client.clone(),
        &notification_config,
        &config.state_namespace,
        &config.namespaces,
        metrics.clone(),
        &identity,
        refused,
    )
    .map_err(|e| RunError::Config(e.to_string()))?;
    let ctx = Arc::new(Context::new(client, config, metrics, throttle, &identity)?);
    ctx.set_notifier(notifier);
    let outcome = match elector {
        None => {
            ctx.metrics.set_leader(true);
            run_controller(ctx, shutdown.clone(), &readiness).await;
            Ok(())
        }
        Some(elector) => lead_then_run(ctx, elector, shutdown.clone(), &readiness).await,
    };
    readiness.set_watch_ready(false);
    if outcome.is_ok() {
        shutdown.await;
    }
    let _ = server.await;
    tracing::info!("stopped");
    outcome
}

/// Shows what the elector publishes: its state on `/readyz`, whether it leads on the `leader`
/// metric. Ends once the elector has stopped, after showing its last word.
async fn publish_leadership(
    mut state: watch::Receiver<LeaderState>,
    mut leading: watch::Receiver<bool>,
    readiness: Readiness,
    metrics: Metrics,
) {
    loop {
        readiness.set_leader_state(*state.borrow_and_update());
        metrics.set_leader(*leading.borrow_and_update());
        let open = tokio::select! {
            changed = state.changed() => changed.is_ok(),
            changed = leading.changed() => changed.is_ok(),
        };
        if !open {
            break;
        }
    }
    readiness.set_leader_state(*state.borrow());
    metrics.set_leader(*leading.borrow());
}

async fn run_controller(
    ctx: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + Clone + 'static,
    readiness: &Readiness,
) {
    controller::run(ctx, stop, readiness.clone()).await;
}

/// Waits for the lease, reconciles while leading, and releases the lease only after the
/// controller (and every reconcile in flight) has stopped, so two leaders never work on one
/// object. Losing the lease ends the process, as client-go does: a fresh start campaigns again.
async fn lead_then_run(
    ctx: Arc<Context>,
    elector: LeaderElector,
    shutdown: Shutdown,
    readiness: &Readiness,
) -> Result<(), RunError> {
    let mut leading = elector.leading();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let campaign = tokio::spawn(elector.run(async {
        let _ = released.await;
    }));
    let became_leader = tokio::select! {
        result = leading.wait_for(|l| *l) => result.is_ok(),
        _ = shutdown.clone() => false,
    };
    let mut lost = false;
    if became_leader {
        tracing::info!("leading: starting the controller");
        let mut watch_loss = leading.clone();
        let loss: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = watch_loss.wait_for(|l| !*l).await;
        });
        let stop: Shutdown = {
            let either: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(futures::future::select(shutdown.clone(), loss).map(|_| ()));
            either.shared()
        };
        run_controller(ctx, stop, readiness).await;
        lost = !*leading.borrow();
    }
    let _ = release.send(());
    let _ = campaign.await;
    if lost {
        return Err(RunError::LostLease);
    }
    Ok(())
}

fn identity(args: &RunArgs) -> String {
    args.leader_elect_identity
        .clone()
        .unwrap_or_else(crate::runtime::leader::default_identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_sample(metrics: &Metrics) -> Option<f64> {
        metrics.encode().lines().find_map(|l| {
            l.strip_prefix("ots_operator_leader")?
                .strip_prefix(' ')?
                .parse()
                .ok()
        })
    }

    /// Lets the publishing task run until `cond` holds (virtual time, so no real wait).
    async fn until(cond: impl Fn() -> bool) {
        for _ in 0..100 {
            if cond() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("not published");
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_elector_publishes_reaches_readyz_and_the_leader_metric() {
        let (state, state_rx) = watch::channel(LeaderState::Unhealthy);
        let (leading, leading_rx) = watch::channel(false);
        let readiness = Readiness::new(true);
        readiness.set_watch_ready(true);
        let metrics = Metrics::new();
        let task = tokio::spawn(publish_leadership(
            state_rx,
            leading_rx,
            readiness.clone(),
            metrics.clone(),
        ));
        until(|| leader_sample(&metrics) == Some(0.0)).await;
        assert_eq!(readiness.check(), Err("leader election is not healthy"));

        state.send_replace(LeaderState::Standby);
        until(|| readiness.leader_state() == LeaderState::Standby).await;
        assert_eq!(readiness.check(), Ok(()), "a standby is ready");
        assert_eq!(leader_sample(&metrics), Some(0.0));

        state.send_replace(LeaderState::Leading);
        leading.send_replace(true);
        until(|| leader_sample(&metrics) == Some(1.0)).await;
        until(|| readiness.leader_state() == LeaderState::Leading).await;

        // The elector stops: its last word (not leading, unhealthy) is shown, then the task ends.
        leading.send_replace(false);
        state.send_replace(LeaderState::Unhealthy);
        drop((state, leading));
        task.await.unwrap();
        assert_eq!(readiness.leader_state(), LeaderState::Unhealthy);
        assert_eq!(leader_sample(&metrics), Some(0.0));
    }
}
