//! Leader election on a real kube-apiserver: of several replicas exactly one leads, a dead leader is
//! replaced once its lease runs out, and a leader that shuts down hands over at once.
//!
//! No timing assertions: waits are generous, and where speed is the point the lease is made long
//! enough that only the behaviour under test (a release) can explain the outcome. Measured handover
//! times are printed.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use ots_operator::runtime::leader::{LeaderElector, LeaseConfig};
use ots_operator::runtime::readiness::LeaderState;
use support::operator::setup;
use tokio::sync::{oneshot, watch};

/// Generous bound for waits on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(120);
const LEASE: &str = "ots-operator-leader";

struct Candidate {
    identity: String,
    leading: watch::Receiver<bool>,
    /// What the elector publishes about where it stands (what `/readyz` shows).
    state: watch::Receiver<LeaderState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Candidate {
    fn start(client: &Client, namespace: &str, identity: &str, lease_duration: Duration) -> Self {
        let config =
            LeaseConfig::new(namespace, LEASE, identity).with_lease_duration(lease_duration);
        let elector = LeaderElector::new(client.clone(), config);
        let leading = elector.leading();
        let state = elector.state();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async {
            let _ = stopped.await;
        }));
        Self {
            identity: identity.to_owned(),
            leading,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Leading, and still running (a killed candidate leads nothing).
    fn is_leading(&self) -> bool {
        self.task.is_some() && *self.leading.borrow()
    }

    /// The state the elector published last.
    fn state(&self) -> LeaderState {
        *self.state.borrow()
    }

    /// Stops the way SIGTERM does: stop leading, release the lease.
    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the elector task ends cleanly");
        }
    }

    /// Stops the way `kill -9` does: no more renewals, no release.
    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Polls until `cond` holds, asserting at every poll that at most one candidate leads; returns how
/// long it took.
async fn until(candidates: &[&Candidate], what: &str, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let leaders: Vec<_> = candidates
            .iter()
            .filter(|c| c.is_leading())
            .map(|c| c.identity.as_str())
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if cond() {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets `span` pass, asserting at every poll that exactly one candidate leads.
async fn exactly_one_leads_for(candidates: &[&Candidate], span: Duration) {
    let start = Instant::now();
    while start.elapsed() < span {
        let leaders = candidates.iter().filter(|c| c.is_leading()).count();
        assert_eq!(leaders, 1, "{leaders} leaders");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `replica-a`, waits until it leads, then starts `replica-b` and waits until it stands by.
async fn a_leads_and_b_stands_by(
    client: &Client,
    namespace: &str,
    lease: Duration,
) -> (Candidate, Candidate) {
    let a = Candidate::start(client, namespace, "replica-a", lease);
    until(&[&a], "a leads", || a.is_leading()).await;
    let b = Candidate::start(client, namespace, "replica-b", lease);
    until(&[&a, &b], "b stands by", || {
        b.state() == LeaderState::Standby
    })
    .await;
    (a, b)
}

async fn holder(client: &Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(LEASE)
        .await
        .expect("read the lease")
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn of_two_replicas_exactly_one_leads_and_holds_the_lease() {
    let (client, namespace) = setup("leader-one").await;
    // A short lease, so that several renewals happen while we watch.
    let lease = Duration::from_secs(3);
    let a = Candidate::start(&client, &namespace, "replica-a", lease);
    let b = Candidate::start(&client, &namespace, "replica-b", lease);

    until(&[&a, &b], "a leader", || a.is_leading() || b.is_leading()).await;
    let (leader, standby) = if a.is_leading() { (&a, &b) } else { (&b, &a) };
    exactly_one_leads_for(&[&a, &b], lease * 3).await;

    assert!(
        leader.is_leading(),
        "leadership moved between two healthy replicas"
    );
    assert_eq!(
        holder(&client, &namespace).await,
        Some(leader.identity.clone())
    );
    assert_eq!(leader.state(), LeaderState::Leading);
    assert_eq!(standby.state(), LeaderState::Standby);
}

#[tokio::test]
async fn when_the_leader_dies_the_standby_takes_over_after_the_lease_runs_out() {
    let (client, namespace) = setup("leader-killed").await;
    let lease = Duration::from_secs(3);
    let (mut a, b) = a_leads_and_b_stands_by(&client, &namespace, lease).await;

    a.kill().await;
    assert_eq!(
        holder(&client, &namespace).await.as_deref(),
        Some("replica-a")
    );
    let took = until(&[&a, &b], "b takes over", || b.is_leading()).await;
    println!("takeover after the leader was killed: {took:?} (lease {lease:?})");
    assert_eq!(
        holder(&client, &namespace).await.as_deref(),
        Some("replica-b")
    );
}

#[tokio::test]
async fn a_leader_that_shuts_down_releases_the_lease_and_the_standby_leads_at_once() {
    let (client, namespace) = setup("leader-release").await;
    // A lease far longer than `until`'s bound: only a release lets the standby lead in time.
    let lease = Duration::from_secs(600);
    let (mut a, b) = a_leads_and_b_stands_by(&client, &namespace, lease).await;

    let start = Instant::now();
    a.shut_down().await;
    let released = start.elapsed();
    assert!(!a.is_leading());
    let took = until(&[&a, &b], "b takes over", || b.is_leading()).await + released;
    println!("handover after shutdown: {took:?} (release call {released:?})");
    assert_eq!(
        holder(&client, &namespace).await.as_deref(),
        Some("replica-b")
    );
}

#[tokio::test]
async fn a_standby_that_shuts_down_leaves_the_leader_alone() {
    let (client, namespace) = setup("leader-standby-stops").await;
    let lease = Duration::from_secs(3);
    let (a, mut b) = a_leads_and_b_stands_by(&client, &namespace, lease).await;

    b.shut_down().await;
    exactly_one_leads_for(&[&a, &b], lease * 2).await;
    assert!(a.is_leading());
    assert_eq!(
        holder(&client, &namespace).await.as_deref(),
        Some("replica-a")
    );
}
