//! `ots-operator run`: wires configuration, clients, the HTTP endpoints and the controller, and
//! shuts down gracefully on SIGTERM or SIGINT.

use crate::config::RunArgs;
use crate::controller::{self, Context};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::telemetry;
use crate::throttle::{Throttle, ThrottleConfig};
use futures::FutureExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
    let client = kube::Client::try_default().await?;
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
    let ctx = Arc::new(Context::new(client, config, metrics, throttle, &identity)?);
    let ready = readiness.clone();
    controller::run(ctx, shutdown.clone(), move || ready.set_watch_ready(true)).await;
    readiness.set_watch_ready(false);
    shutdown.await;
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

fn identity(args: &RunArgs) -> String {
    args.leader_elect_identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ots-operator".into());
        format!("{host}-{}", std::process::id())
    })
}
