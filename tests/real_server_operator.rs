//! The operator end to end (real control plane) against a small fake that answers exactly as the
//! real Onetime Secret server does where our test server used to differ (issue 10's "Why"):
//! a burn of an opened link answers `200 {"success":true}` without a record
//! (`apps/api/v2/logic/secrets/burn_secret.rb:54-56` at de53ff8f7), a ttl above the plan is
//! `403 EntitlementRequired` (`base_secret_action.rb:124-125`), an unknown route is
//! `404 {"error_type":"NotFound"}` (`apps/api/v2/application.rb:68`).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::operator::*;

/// How the fake differs from a plain current server.
#[derive(Clone, Default)]
struct Scenario {
    /// Longest ttl the account's plan allows; more is refused with `EntitlementRequired`.
    plan_ttl_max: Option<u64>,
    /// Receipt routes answer as unknown routes (a wrong base path, or a proxy in the way).
    receipt_routes_missing: bool,
}

#[derive(Default)]
struct State {
    /// Receipt key → (secret key, state word).
    secrets: HashMap<String, (String, String)>,
    /// Requests per "METHOD first-two-path-segments-after-version".
    calls: HashMap<String, u64>,
    next: u64,
}

struct Fake {
    url: String,
    state: Arc<Mutex<State>>,
    _runtime: std::thread::JoinHandle<()>,
}

impl Fake {
    /// Starts the fake on its own thread (it outlives the test's runtime).
    fn start(scenario: Scenario) -> Fake {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app =
                    axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
                        let state = shared.clone();
                        let scenario = scenario.clone();
                        async move { answer(&scenario, &state, &method, uri.path(), &body) }
                    });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("http://{}", listener.local_addr().unwrap()))
                    .unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        Fake {
            url: rx.recv().unwrap(),
            state,
            _runtime: runtime,
        }
    }

    fn calls(&self, what: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    /// The recipient opens the link (the server's own reveal, without HTTP).
    fn reveal(&self, secret_key: &str) {
        let mut state = self.state.lock().unwrap();
        for (sk, word) in state.secrets.values_mut() {
            if sk == secret_key && word == "new" {
                *word = "revealed".into();
                return;
            }
        }
        panic!("no live secret {secret_key}");
    }

    fn live(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.secrets.values().filter(|(_, w)| w == "new").count()
    }
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn receipt_record(mk: &str, sk: &str, word: &str) -> Value {
    let live = word == "new";
    json!({
        "identifier": mk, "key": mk, "custid": "anon", "state": word,
        "secret_identifier": if live { json!(sk) } else { Value::Null },
        "secret_ttl": 3600, "metadata_ttl": 3600, "receipt_ttl": 3600, "lifespan": 3600,
        "created": 1_767_225_600.5, "updated": 1_767_225_600.5, "has_passphrase": false,
    })
}

fn key(prefix: char, n: u64) -> String {
    format!("{prefix}{n:061}")
}

fn answer(
    scenario: &Scenario,
    state: &Mutex<State>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response {
    let parts: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    let mut state = state.lock().unwrap();
    let label = format!("{method} {}", parts.first().copied().unwrap_or_default());
    *state.calls.entry(label).or_default() += 1;
    let route_404 = || reply(404, json!({"error": "Not Found", "error_type": "NotFound"}));
    if !path.starts_with("/api/v2/") {
        return route_404();
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["status"]) => reply(
            200,
            json!({"success": true, "status": "nominal", "locale": "en"}),
        ),
        ("GET", ["version"]) => reply(200, json!({"success": true, "version": [0, 26, 6]})),
        ("POST", ["secret", "conceal"]) => {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            let ttl = request
                .pointer("/secret/ttl")
                .and_then(Value::as_u64)
                .unwrap_or(604_800);
            if scenario.plan_ttl_max.is_some_and(|max| ttl > max) {
                return reply(
                    403,
                    json!({
                        "error": "Feature requires extended default expiration entitlement",
                        "error_type": "EntitlementRequired",
                        "entitlement": "extended_default_expiration",
                        "current_plan": "free_v1",
                    }),
                );
            }
            state.next += 1;
            let (mk, sk) = (key('m', state.next), key('s', state.next));
            state.secrets.insert(mk.clone(), (sk.clone(), "new".into()));
            let mut receipt = receipt_record(&mk, &sk, "new");
            receipt["secret_ttl"] = json!(ttl);
            receipt["lifespan"] = json!(ttl);
            reply(
                200,
                json!({"success": true, "record": {"receipt": receipt, "secret": {"identifier": sk, "lifespan": ttl}}}),
            )
        }
        (_, ["receipt", ..]) if scenario.receipt_routes_missing => route_404(),
        ("GET", ["receipt", mk]) => match state.secrets.get(*mk) {
            Some((sk, word)) => reply(
                200,
                json!({"success": true, "record": receipt_record(mk, sk, word), "details": {}}),
            ),
            None => reply(404, json!({"error_type": "RecordNotFound"})),
        },
        ("POST", ["receipt", mk, "burn"]) => match state.secrets.get_mut(*mk) {
            Some((sk, word)) if word == "new" => {
                *word = "burned".into();
                // Serialized as loaded, before the burn.
                reply(
                    200,
                    json!({"success": true, "record": receipt_record(mk, sk, "new")}),
                )
            }
            // The secret is already consumed: process returns nil, rendered as success.
            Some(_) => reply(200, json!({"success": true})),
            None => reply(404, json!({"error_type": "RecordNotFound"})),
        },
        _ => route_404(),
    }
}

/// Operator arguments for `fake` with link checks every `refresh` (min and max).
fn args(ns: &str, fake: &Fake, refresh: &str) -> Vec<String> {
    let mut args = fast_args(ns, &fake.url);
    for flag in ["--refresh-min", "--refresh-max"] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = refresh.to_owned();
    }
    args
}

/// Why, bullet 1: deleting a share right after its link was opened (before the next check).
/// The burn answers `200 {"success":true}` without a record: the secret is gone, the resource is
/// released at once, and no BurnFailed Event claims the link stays valid.
#[tokio::test]
async fn deleting_right_after_the_link_was_opened_releases_at_once_without_burn_failed() {
    let (client, ns) = setup("real-opened-delete").await;
    let fake = Fake::start(Scenario::default());
    // Checks are rare, so the deletion comes before the operator notices the reveal.
    let _operator = Operator::start_with(&args(&ns, &fake, "10m"), &[("RUST_LOG", "info")]);
    let shared = shared_db(&client, &ns, "opened", b"opened", json!({})).await;
    fake.reveal(&secret_key(
        shared.status.as_ref().unwrap().link.as_deref().unwrap(),
    ));

    delete_opened_and_expect_release(&client, &ns, "opened", "the real server's answer").await;
}

/// Why, bullet 2: a free account asking for 30 days. The server refuses with
/// `EntitlementRequired`; that is `TtlNotAllowed` (the credentials are fine), and no retry storm.
#[tokio::test]
async fn a_ttl_above_the_plan_is_ttl_not_allowed_and_not_retried_in_a_loop() {
    let (client, ns) = setup("real-ttl-plan").await;
    let fake = Fake::start(Scenario {
        plan_ttl_max: Some(14 * 86_400),
        ..Scenario::default()
    });
    let _operator = Operator::start_with(
        &args(&ns, &fake, "1s"),
        &[
            ("OTS_USERNAME", "free@example.com"),
            ("OTS_API_TOKEN", "tok-free-account"),
            ("RUST_LOG", "info"),
        ],
    );
    share_db_password_for_30d(&client, &ns).await;
    let obj = wait_for(&client, &ns, "month", "a refusal", |o| {
        ready(o).is_some_and(|(status, _, _)| status == "False")
    })
    .await;
    let (_, reason, message) = ready(&obj).unwrap();
    assert_eq!(reason, "TtlNotAllowed", "{message}");
    assert_eq!(phase(&obj), "Failed");
    assert!(
        message.contains("30d") && message.contains("14d"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let shares = fake.calls("POST secret");
    assert!(shares <= 3, "{shares} share calls for a refused lifetime");
}

/// Why, bullet 6: an unknown route is not a gone secret. When the receipt routes answer
/// `404 NotFound` (a wrong path), the live link stays Shared and the Event names the path.
#[tokio::test]
async fn an_unknown_receipt_route_never_marks_a_live_link_expired() {
    let (client, ns) = setup("real-route-404").await;
    let fake = Fake::start(Scenario {
        receipt_routes_missing: true,
        ..Scenario::default()
    });
    let _operator = Operator::start_with(&args(&ns, &fake, "1s"), &[("RUST_LOG", "info")]);
    create_secret(&client, &ns, "db", &[("password", b"live")]).await;
    create_share(
        &client,
        &ns,
        "live",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    wait_shared(&client, &ns, "live").await;
    let note = wait_event(&client, &ns, "live", "Warning", "ServerProtocolError").await;
    assert!(
        note.contains("/api/v2/"),
        "the Event names the path: {note}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let obj = shares(&client, &ns).get("live").await.unwrap();
    assert_eq!(phase(&obj), "Shared", "a wrong route left the link live");
    assert_eq!(fake.live(), 1);
}
