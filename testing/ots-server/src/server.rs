//! The server handle: binding, serving, shutting down, and the state every handler shares.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::faults::{FaultState, Faults};
use crate::stats::{Recorder, RequestRecord, Stats};
use crate::store::{LiveReceipt, Store};
use crate::{admin, api, site};

/// State shared by every request.
pub(crate) struct App {
    pub(crate) config: Config,
    /// Scheme and host used in links (`metadata_url`, `share_domain`), no trailing slash.
    pub(crate) public_url: String,
    pub(crate) store: Store,
    faults: Mutex<FaultState>,
    recorder: Mutex<Recorder>,
    pub(crate) started: Instant,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and switches stay usable even if a handler panicked while holding them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    pub(crate) fn set_faults(&self, faults: Faults) {
        let now = self.store.clock.now();
        lock(&self.faults).set(faults, now);
    }

    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    pub(crate) fn decide_fault(&self) -> crate::faults::Injected {
        let now = self.store.clock.now();
        lock(&self.faults).decide(now)
    }

    pub(crate) fn decide_after_store(&self) -> Option<crate::faults::AfterStoreKind> {
        lock(&self.faults).decide_after_store()
    }

    pub(crate) fn record(&self, rec: RequestRecord) {
        lock(&self.recorder).record(rec);
    }

    pub(crate) fn stats(&self) -> Stats {
        let live = self.store.live_count();
        lock(&self.recorder).stats(live)
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.recorder).requests()
    }

    pub(crate) fn reset_stats(&self) {
        lock(&self.recorder).reset();
    }

    /// Sleeps for `d`, or returns early (false) when the server shuts down.
    pub(crate) async fn sleep_unless_shutdown(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            _ = rx.wait_for(|stopped| *stopped) => false,
        }
    }
}

/// A running test server. Dropping it stops the server.
pub struct TestServer {
    app: Arc<App>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

async fn dispatch(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/_admin" || path.starts_with("/_admin/") {
        admin::handle(&app, req).await
    } else if let Some(version) = api::version_of(&path, app.config.enable_v2) {
        api::handle(app.clone(), version, peer, req).await
    } else {
        site::handle(&app, req)
    }
}

impl TestServer {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<TestServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr, config: Config) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve_with_done(listener, config).0)
    }

    /// Binds 127.0.0.1 on a free port and serves from a runtime on its own thread, so
    /// non-async callers can use it and it can outlive a test's runtime.
    pub fn start_in_thread(config: Config) -> std::io::Result<TestServer> {
        Self::start_in_thread_on(SocketAddr::from(([127, 0, 0, 1], 0)), config)
    }

    /// As [`TestServer::start_in_thread`], bound to `addr`: for clients that cannot reach this
    /// machine's loopback, such as pods on a test node's bridge.
    pub fn start_in_thread_on(addr: SocketAddr, config: Config) -> std::io::Result<TestServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("ots-testserver")
            .build()?;
        // Bind with std so that callers inside another runtime (async tests) may use this too.
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ots-testserver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    let (server, done) = Self::serve_with_done(listener, config);
                    let mut stop = server.stop.subscribe();
                    if ready_tx.send(server).is_err() {
                        return;
                    }
                    let _ = stop.wait_for(|s| *s).await;
                    // Let in-flight requests see the stop; then the runtime drops the rest.
                    let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
                });
            })?;
        let mut server = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("test server thread exited before starting"))?;
        server.thread = Some(thread);
        Ok(server)
    }

    fn serve_with_done(
        listener: TcpListener,
        config: Config,
    ) -> (TestServer, tokio::task::JoinHandle<()>) {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (stop, shutdown) = watch::channel(false);
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let store = Store::new(config.short_keys());
        let app = Arc::new(App {
            public_url,
            store,
            faults: Mutex::new(FaultState::default()),
            recorder: Mutex::new(Recorder::default()),
            started: Instant::now(),
            shutdown: shutdown.clone(),
            config,
        });
        app.set_faults(app.config.faults.clone());
        let router = Router::new().fallback(dispatch).with_state(app.clone());
        let mut graceful = shutdown;
        let done = tokio::spawn(async move {
            let result = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|s| *s).await;
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "ots-testserver stopped with an error");
            }
        });
        (
            TestServer {
                app,
                addr,
                stop,
                thread: None,
            },
            done,
        )
    }

    /// Site base URL, `http://127.0.0.1:PORT`; the API is under `/api/v1` and `/api/v2`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the fault switches (a rate-limit burst starts now).
    pub fn set_faults(&self, faults: Faults) {
        self.app.set_faults(faults);
    }

    /// The current fault switches.
    pub fn faults(&self) -> Faults {
        self.app.faults()
    }

    /// Counters since start or the last reset.
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// The request log since start or the last reset (oldest first).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.requests()
    }

    /// Clears counters and the request log (secrets stay).
    pub fn reset_stats(&self) {
        self.app.reset_stats();
    }

    /// Moves the server clock forward: ttls, expiry, receipt lifetime and lockouts follow it.
    pub fn advance_clock(&self, d: Duration) {
        self.app.store.clock.advance(d);
    }

    /// Every live (unread, unexpired, unburned) secret.
    pub fn live_receipts(&self) -> Vec<LiveReceipt> {
        self.app.store.live()
    }

    /// Stops the server and waits for its thread (if it has one) to finish.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
