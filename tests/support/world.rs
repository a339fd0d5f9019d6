//! [`World`]: the opening most operator tests share — a namespace on this test binary's control
//! plane, an in-memory OTS test server and the real operator watching that namespace — with the
//! steps tests take in it (a Secret, a OneTimeShare, a wait for its phase, a reveal).
//!
//! The free functions of [`super::operator`] stay for tests that need another arrangement (an
//! operator started later, two operators, a namespace of their own).
#![allow(dead_code)]

use super::operator::{
    Operator, calls, create_secret, create_share, delete_secret, delete_share, events, ots_server,
    phase, reveal, setup, shares, update_secret, wait_event, wait_for, wait_gone,
};
use kube::{Api, Client};
use ots_operator::ots::OtsError;
use ots_operator::resource::OneTimeShare;
use ots_testserver::{Config, TestServer};

/// A namespace, a test server and the operator watching the namespace. Dropping it stops the
/// operator first, then the server.
pub struct World {
    /// An admin client of the control plane.
    pub client: Client,
    /// The test's own namespace.
    pub ns: String,
    /// The running operator (declared before the server, so it is dropped first).
    pub operator: Operator,
    /// The OTS test server the operator shares to.
    pub server: TestServer,
}

impl World {
    /// A namespace named after `prefix`, a default test server and the operator with the usual
    /// fast test arguments.
    pub async fn start(prefix: &str) -> World {
        World::with(prefix, Config::default(), &[]).await
    }

    /// As [`World::start`], with the server's `config` and `extra` operator arguments.
    pub async fn with(prefix: &str, config: Config, extra: &[&str]) -> World {
        World::with_server(prefix, ots_server(config), extra).await
    }

    /// As [`World::with`], with a server the test prepared before the operator starts.
    pub async fn with_server(prefix: &str, server: TestServer, extra: &[&str]) -> World {
        World::with_operator(prefix, server, |ns, url| Operator::start(ns, url, extra)).await
    }

    /// As [`World::with_server`], for a test that starts the operator its own way (its own log
    /// level, environment or OTS URL): `start` gets the namespace and the server's URL.
    pub async fn with_operator(
        prefix: &str,
        server: TestServer,
        start: impl FnOnce(&str, &str) -> Operator,
    ) -> World {
        let (client, ns) = setup(prefix).await;
        let operator = start(&ns, &server.url());
        World {
            client,
            ns,
            operator,
            server,
        }
    }

    /// The OneTimeShare API of the namespace.
    pub fn shares(&self) -> Api<OneTimeShare> {
        shares(&self.client, &self.ns)
    }

    /// Creates a Secret with the given data.
    pub async fn secret(&self, name: &str, data: &[(&str, &[u8])]) {
        create_secret(&self.client, &self.ns, name, data).await;
    }

    /// Replaces a Secret's data.
    pub async fn update_secret(&self, name: &str, data: &[(&str, &[u8])]) {
        update_secret(&self.client, &self.ns, name, data).await;
    }

    /// Deletes a Secret.
    pub async fn delete_secret(&self, name: &str) {
        delete_secret(&self.client, &self.ns, name).await;
    }

    /// Creates a OneTimeShare with the given spec.
    pub async fn share(&self, name: &str, spec: serde_json::Value) {
        create_share(&self.client, &self.ns, name, spec).await;
    }

    /// Creates a OneTimeShare of one key of a Secret, everything else defaulted.
    pub async fn share_key(&self, name: &str, secret: &str, key: &str) {
        self.share(
            name,
            serde_json::json!({"secretRef": {"name": secret, "key": key}}),
        )
        .await;
    }

    /// The usual opening: Secret `db` holding `value` under key `password`, a OneTimeShare `name`
    /// of that key with the spec fields of `extra` (an object) besides, and the share once Shared.
    pub async fn shared_db(
        &self,
        name: &str,
        value: &[u8],
        extra: serde_json::Value,
    ) -> OneTimeShare {
        super::operator::shared_db(&self.client, &self.ns, name, value, extra).await
    }

    /// Deletes a OneTimeShare.
    pub async fn delete_share(&self, name: &str) {
        delete_share(&self.client, &self.ns, name).await;
    }

    /// Polls a OneTimeShare until `done` holds, and returns it; fails the test after [`WAIT`].
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&OneTimeShare) -> bool,
    ) -> OneTimeShare {
        wait_for(&self.client, &self.ns, name, what, done).await
    }

    /// Waits until a OneTimeShare's phase is `want`, and returns it.
    pub async fn wait_phase(&self, name: &str, want: &str) -> OneTimeShare {
        self.wait_for(name, &format!("phase {want}"), |o| phase(o) == want)
            .await
    }

    /// Waits until a OneTimeShare is Shared, and returns it.
    pub async fn shared(&self, name: &str) -> OneTimeShare {
        self.wait_phase(name, "Shared").await
    }

    /// Waits until a OneTimeShare no longer exists.
    pub async fn wait_gone(&self, name: &str) {
        wait_gone(&self.client, &self.ns, name).await;
    }

    /// Opens a resource's link as the recipient would (no passphrase) and returns the value.
    pub async fn reveal(&self, obj: &OneTimeShare) -> String {
        super::operator::open_link(&self.server, obj).await
    }

    /// Opens a link as the recipient would, with an optional passphrase.
    pub async fn reveal_link(
        &self,
        link: &str,
        passphrase: Option<&str>,
    ) -> Result<String, OtsError> {
        reveal(&self.server, link, passphrase).await
    }

    /// Events about one object: (type, reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        events(&self.client, &self.ns, name).await
    }

    /// Waits until an Event of `kind` with `reason` about the object exists; returns its note.
    pub async fn wait_event(&self, name: &str, kind: &str, reason: &str) -> String {
        wait_event(&self.client, &self.ns, name, kind, reason).await
    }

    /// The operator's `/metrics` page.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.operator.metrics_addr());
        let response = reqwest::get(url).await.expect("get /metrics");
        response.text().await.expect("read /metrics")
    }

    /// How many requests of one operation the test server answered.
    pub fn calls(&self, operation: &str) -> u64 {
        calls(&self.server, operation)
    }
}
