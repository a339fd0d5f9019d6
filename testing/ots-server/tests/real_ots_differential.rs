//! ots-testserver held to the genuine Onetime Secret server (onetimesecret main de53ff8f7, run by
//! `testing/real-ots/up`): the same sequence of requests (every call the operator's client makes,
//! anonymous and with an account, plus its error cases) goes to both, and their answers are
//! compared: status code, v1's `X-OTS-Intended-Status`, field names, JSON types and every value
//! that is not random by nature (keys, times, request ids are masked; live ttls are compared to
//! the ten seconds).
//!
//! Every difference left is listed in `EXPLAINED` with why it cannot matter to the operator (and
//! in the README's "Differences from the genuine server"); any other difference fails the test.
//!
//! Ignored by default (the first build of the genuine server takes about 11 min on 2 cores):
//! `cargo test -p ots-testserver --test real_ots_differential -- --ignored --nocapture`.
//! Without the genuine server's sources it passes with one line saying how to provide them.
//! `OTS_DIFF_DUMP=DIR` writes every raw answer of both servers into DIR.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use common::genuine;

use ots_testserver::{Account, Config, TestServer};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// A well-formed key (62 characters of `[0-9a-z]`) that no server issued.
const UNKNOWN: &str = "unknownkey000000000000000000000000000000000000000000000000000x";

/// Differences that remain on purpose: (request kind, JSON path or `status`, why it cannot matter
/// to the operator). A path matches itself and everything below it.
const EXPLAINED: &[(&str, &str, &str)] = &[(
    "v2 version, account",
    "/version",
    "the genuine build reads its version from package.json, which a source archive leaves at \
     the 0.0.0-rc0 placeholder (releases patch it); the operator only asks /version whether the \
     credentials are good, never reads the number",
)];

// ---------------------------------------------------------------------------------------------
// The sequence of requests

#[derive(Clone, Copy)]
enum Who {
    Anonymous,
    Account,
    WrongToken,
}

enum Body {
    None,
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

struct Step {
    kind: &'static str,
    method: Method,
    /// May hold `{name}` for a value captured by an earlier step.
    path: String,
    who: Who,
    body: Body,
    /// (name, JSON pointer) read from the answer for later steps.
    capture: Vec<(&'static str, &'static str)>,
    /// Fields whose values are random here (a generated secret).
    random: Vec<&'static str>,
    /// Lists whose order is not part of the answer (recent receipts made within one second).
    unordered: bool,
}

impl Step {
    fn new(kind: &'static str, method: Method, path: &str, who: Who, body: Body) -> Step {
        Step {
            kind,
            method,
            path: path.to_owned(),
            who,
            body,
            capture: Vec::new(),
            random: Vec::new(),
            unordered: false,
        }
    }
    fn capture(mut self, pairs: &[(&'static str, &'static str)]) -> Step {
        self.capture.extend_from_slice(pairs);
        self
    }
    fn random(mut self, fields: &[&'static str]) -> Step {
        self.random.extend_from_slice(fields);
        self
    }
    fn unordered(mut self) -> Step {
        self.unordered = true;
        self
    }
}

fn get(kind: &'static str, who: Who, path: &str) -> Step {
    Step::new(kind, Method::GET, path, who, Body::None)
}

fn form(kind: &'static str, who: Who, path: &str, fields: &[(&'static str, &str)]) -> Step {
    let fields = fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    Step::new(kind, Method::POST, path, who, Body::Form(fields))
}

fn post_json(kind: &'static str, who: Who, path: &str, body: Value) -> Step {
    Step::new(kind, Method::POST, path, who, Body::Json(body))
}

fn conceal(kind: &'static str, who: Who, secret: Value) -> Step {
    post_json(
        kind,
        who,
        "/api/v2/secret/conceal",
        json!({ "secret": secret }),
    )
}

/// Captures a v2 create answer's receipt and secret identifiers as `{mk}` and `{sk}`.
fn keys(step: Step, mk: &'static str, sk: &'static str) -> Step {
    step.capture(&[
        (mk, "/record/receipt/identifier"),
        (sk, "/record/secret/identifier"),
    ])
}

/// Every call the operator's client makes (`src/ots/v1.rs`, `src/ots/v2.rs`, `client.rs`'s
/// probe), each in the cases it meets: anonymous and with an account, a wrong token, unknown keys,
/// a consumed secret, a passphrase right and wrong, a ttl above the plan, a secret too large.
#[rustfmt::skip] // one request a line: it reads as the table it is
fn steps() -> Vec<Step> {
    use Who::*;
    let big = "x".repeat(20_000);
    let passphrase = "correct-horse";
    vec![
        // ---- v1
        get("v1 status", Anonymous, "/api/v1/status"),
        get("v1 status, wrong token", WrongToken, "/api/v1/status"),
        get("v1 authcheck", Account, "/api/v1/authcheck"),
        get("v1 authcheck, wrong token", WrongToken, "/api/v1/authcheck"),
        get("v1 authcheck, anonymous", Anonymous, "/api/v1/authcheck"),
        form("v1 share, anonymous", Anonymous, "/api/v1/share", &[("secret", "v1-anon"), ("ttl", "3600")])
            .capture(&[("a_mk", "/metadata_key"), ("a_sk", "/secret_key")]),
        form("v1 share, account", Account, "/api/v1/share", &[("secret", "v1-account"), ("ttl", "7200")])
            .capture(&[("b_mk", "/metadata_key"), ("b_sk", "/secret_key")]),
        form("v1 share, wrong token", WrongToken, "/api/v1/share", &[("secret", "x"), ("ttl", "3600")]),
        form("v1 share, no ttl", Account, "/api/v1/share", &[("secret", "v1-default-ttl")]),
        form("v1 generate, account", Account, "/api/v1/generate", &[("ttl", "3600")])
            .capture(&[("g_mk", "/metadata_key")])
            .random(&["value", "secret_value"]),
        form("v1 generate, anonymous, length 20", Anonymous, "/api/v1/generate", &[("ttl", "3600"), ("length", "20")])
            .random(&["value", "secret_value"]),
        get("v1 receipt, anonymous", Anonymous, "/api/v1/private/{a_mk}"),
        get("v1 receipt, account", Account, "/api/v1/private/{b_mk}"),
        get("v1 receipt, wrong token", WrongToken, "/api/v1/private/{b_mk}"),
        get("v1 receipt of a generated secret", Account, "/api/v1/private/{g_mk}")
            .random(&["value", "secret_value"]),
        get("v1 recent, account", Account, "/api/v1/private/recent").unordered(),
        get("v1 recent, anonymous", Anonymous, "/api/v1/private/recent"),
        form("v1 reveal", Anonymous, "/api/v1/secret/{b_sk}", &[]),
        get("v1 receipt after reveal", Account, "/api/v1/private/{b_mk}"),
        form("v1 reveal again", Anonymous, "/api/v1/secret/{b_sk}", &[]),
        form("v1 burn after reveal", Account, "/api/v1/private/{b_mk}/burn", &[]),
        form("v1 burn", Anonymous, "/api/v1/private/{a_mk}/burn", &[]),
        form("v1 burn twice", Anonymous, "/api/v1/private/{a_mk}/burn", &[]),
        get("v1 receipt after burn", Anonymous, "/api/v1/private/{a_mk}"),
        form("v1 reveal a burned secret", Anonymous, "/api/v1/secret/{a_sk}", &[]),
        form("v1 burn, unknown key", Anonymous, &format!("/api/v1/private/{UNKNOWN}/burn"), &[]),
        form("v1 reveal, unknown key", Anonymous, &format!("/api/v1/secret/{UNKNOWN}"), &[]),
        get("v1 receipt, unknown key", Anonymous, &format!("/api/v1/private/{UNKNOWN}")),
        form("v1 share, anonymous, ttl above the plan", Anonymous, "/api/v1/share", &[("secret", "ttl"), ("ttl", "99999999")]),
        form("v1 share, account, ttl above the plan", Account, "/api/v1/share", &[("secret", "ttl"), ("ttl", "99999999")]),
        form("v1 share, ttl below the minimum", Account, "/api/v1/share", &[("secret", "ttl"), ("ttl", "10")]),
        form("v1 share, too large", Account, "/api/v1/share", &[("secret", &big), ("ttl", "3600")]),
        form("v1 share, empty secret", Account, "/api/v1/share", &[("secret", ""), ("ttl", "3600")]),
        form("v1 share, passphrase too short", Account, "/api/v1/share", &[("secret", "p"), ("passphrase", "abc")]),
        form("v1 share, passphrase", Account, "/api/v1/share", &[("secret", "v1-protected"), ("ttl", "3600"), ("passphrase", passphrase)])
            .capture(&[("p_mk", "/metadata_key"), ("p_sk", "/secret_key")]),
        get("v1 receipt, passphrase", Account, "/api/v1/private/{p_mk}"),
        form("v1 reveal, wrong passphrase", Anonymous, "/api/v1/secret/{p_sk}", &[("passphrase", "wrong-one")]),
        form("v1 reveal, no passphrase", Anonymous, "/api/v1/secret/{p_sk}", &[]),
        form("v1 burn, wrong passphrase", Account, "/api/v1/private/{p_mk}/burn", &[("passphrase", "wrong-one")]),
        form("v1 burn, no passphrase", Account, "/api/v1/private/{p_mk}/burn", &[]),
        form("v1 reveal, right passphrase", Anonymous, "/api/v1/secret/{p_sk}", &[("passphrase", passphrase)]),
        form("v1 share, passphrase (to burn)", Account, "/api/v1/share", &[("secret", "v1-protected-2"), ("ttl", "3600"), ("passphrase", passphrase)])
            .capture(&[("q_mk", "/metadata_key")]),
        form("v1 burn, right passphrase", Account, "/api/v1/private/{q_mk}/burn", &[("passphrase", passphrase)]),
        get("v1 unknown route", Anonymous, "/api/v1/nothing-here"),
        // ---- v2
        get("v2 status", Anonymous, "/api/v2/status"),
        get("v2 status, wrong token", WrongToken, "/api/v2/status"),
        get("v2 version, account", Account, "/api/v2/version"),
        get("v2 version, anonymous", Anonymous, "/api/v2/version"),
        get("v2 version, wrong token", WrongToken, "/api/v2/version"),
        get("v2 authcheck (the client's first verify route)", Account, "/api/v2/authcheck"),
        keys(conceal("v2 conceal, anonymous", Anonymous, json!({"secret": "v2-anon", "ttl": 3600})), "c_mk", "c_sk"),
        keys(conceal("v2 conceal, account", Account, json!({"secret": "v2-account", "ttl": 7200})), "d_mk", "d_sk"),
        conceal("v2 conceal, wrong token", WrongToken, json!({"secret": "x", "ttl": 3600})),
        conceal("v2 conceal, no ttl", Account, json!({"secret": "v2-default-ttl"})),
        keys(post_json("v2 generate, account", Account, "/api/v2/secret/generate", json!({"secret": {"ttl": 3600}})), "e_mk", "e_sk"),
        post_json("v2 generate, anonymous, length 20", Anonymous, "/api/v2/secret/generate", json!({"secret": {"ttl": 3600, "length": 20}})),
        get("v2 receipt of a generated secret (shows its value once)", Account, "/api/v2/receipt/{e_mk}")
            .random(&["secret_value"]),
        get("v2 receipt of a generated secret, second view", Account, "/api/v2/receipt/{e_mk}"),
        get("v2 receipt, anonymous", Anonymous, "/api/v2/receipt/{c_mk}"),
        get("v2 receipt, account", Account, "/api/v2/receipt/{d_mk}"),
        get("v2 receipt, /private alias", Account, "/api/v2/private/{d_mk}"),
        get("v2 receipt, wrong token", WrongToken, "/api/v2/receipt/{d_mk}"),
        get("v2 recent, account", Account, "/api/v2/receipt/recent").unordered(),
        get("v2 recent, anonymous", Anonymous, "/api/v2/receipt/recent"),
        post_json("v2 reveal without continue", Anonymous, "/api/v2/secret/{d_sk}/reveal", json!({})),
        post_json("v2 reveal", Anonymous, "/api/v2/secret/{d_sk}/reveal", json!({"continue": true})),
        get("v2 receipt after reveal", Account, "/api/v2/receipt/{d_mk}"),
        post_json("v2 reveal again", Anonymous, "/api/v2/secret/{d_sk}/reveal", json!({"continue": true})),
        post_json("v2 burn after reveal", Account, "/api/v2/receipt/{d_mk}/burn", json!({"continue": true})),
        post_json("v2 burn", Anonymous, "/api/v2/receipt/{c_mk}/burn", json!({"continue": true})),
        post_json("v2 burn twice", Anonymous, "/api/v2/receipt/{c_mk}/burn", json!({"continue": true})),
        get("v2 receipt after burn", Anonymous, "/api/v2/receipt/{c_mk}"),
        post_json("v2 reveal a burned secret", Anonymous, "/api/v2/secret/{c_sk}/reveal", json!({"continue": true})),
        post_json("v2 burn, unknown key", Anonymous, &format!("/api/v2/receipt/{UNKNOWN}/burn"), json!({"continue": true})),
        post_json("v2 reveal, unknown key", Anonymous, &format!("/api/v2/secret/{UNKNOWN}/reveal"), json!({"continue": true})),
        get("v2 receipt, unknown key", Anonymous, &format!("/api/v2/receipt/{UNKNOWN}")),
        conceal("v2 conceal, anonymous, ttl above the plan", Anonymous, json!({"secret": "ttl", "ttl": 99_999_999})),
        conceal("v2 conceal, account, ttl above the plan", Account, json!({"secret": "ttl", "ttl": 99_999_999})),
        conceal("v2 conceal, ttl below the minimum", Account, json!({"secret": "ttl", "ttl": 10})),
        conceal("v2 conceal, too large", Account, json!({"secret": big, "ttl": 3600})),
        conceal("v2 conceal, empty secret", Account, json!({"secret": "", "ttl": 3600})),
        conceal("v2 conceal, passphrase too short", Account, json!({"secret": "p", "passphrase": "abc"})),
        keys(conceal("v2 conceal, passphrase", Account, json!({"secret": "v2-protected", "ttl": 3600, "passphrase": passphrase})), "f_mk", "f_sk"),
        get("v2 receipt, passphrase", Account, "/api/v2/receipt/{f_mk}"),
        post_json("v2 reveal, wrong passphrase", Anonymous, "/api/v2/secret/{f_sk}/reveal", json!({"continue": true, "passphrase": "wrong-one"})),
        post_json("v2 reveal, no passphrase", Anonymous, "/api/v2/secret/{f_sk}/reveal", json!({"continue": true})),
        post_json("v2 burn, wrong passphrase", Account, "/api/v2/receipt/{f_mk}/burn", json!({"continue": true, "passphrase": "wrong-one"})),
        post_json("v2 burn, no passphrase", Account, "/api/v2/receipt/{f_mk}/burn", json!({"continue": true})),
        post_json("v2 reveal, right passphrase", Anonymous, "/api/v2/secret/{f_sk}/reveal", json!({"continue": true, "passphrase": passphrase})),
        keys(conceal("v2 conceal, passphrase (to burn)", Account, json!({"secret": "v2-protected-2", "ttl": 3600, "passphrase": passphrase})), "h_mk", "h_sk"),
        post_json("v2 burn, right passphrase", Account, "/api/v2/receipt/{h_mk}/burn", json!({"continue": true, "passphrase": passphrase})),
        // The batch status route (list_secret_status.rb) that tracking many links rests on: the
        // live secrets among the identifiers, whatever else was asked.
        keys(conceal("v2 conceal, live, for the batch status", Account, json!({"secret": "v2-live", "ttl": 3600})), "l_mk", "l_sk"),
        keys(conceal("v2 conceal, to be previewed", Account, json!({"secret": "v2-previewed", "ttl": 3600})), "m_mk", "m_sk"),
        get("v2 secret page opened, not revealed (the recipient's preview)", Anonymous, "/api/v2/secret/{m_sk}"),
        form("v2 batch status: live, revealed, burned, generated, passphrase, previewed, unknown", Account, "/api/v2/secret/status",
             &[("identifiers", &format!("{{l_sk}},{{d_sk}},{{c_sk}},{{e_sk}},{{f_sk}},{{h_sk}},{{m_sk}},{UNKNOWN}"))]),
        post_json("v2 batch status, JSON body", Account, "/api/v2/secret/status", json!({"identifiers": "{e_sk},{l_sk}"})),
        form("v2 batch status, anonymous", Anonymous, "/api/v2/secret/status", &[("identifiers", "{l_sk}")]),
        form("v2 batch status, wrong token", WrongToken, "/api/v2/secret/status", &[("identifiers", "{l_sk}")]),
        form("v2 batch status, blanks, empty items and a repeat", Account, "/api/v2/secret/status", &[("identifiers", " {l_sk} ,, ,{l_sk},")]),
        form("v2 batch status, no identifiers", Account, "/api/v2/secret/status", &[]),
        form("v2 batch status, garbage", Account, "/api/v2/secret/status", &[("identifiers", "../x,%00,<b>,*,{l_sk}")]),
        get("v2 batch status leaves the secret unread", Account, "/api/v2/receipt/{l_mk}"),
        get("v2 unknown route", Anonymous, "/api/v2/nothing-here"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Sending and masking

struct Target {
    /// `genuine` or `testserver` (names the files of `OTS_DIFF_DUMP`).
    name: &'static str,
    base: String,
    email: String,
    token: String,
}

/// One answer, masked.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: u16,
    /// v1's `X-OTS-Intended-Status`.
    intended: Option<String>,
    body: Value,
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `text` with every `{name}` of a captured value replaced by it.
fn fill_vars(text: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

fn fill(path: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = fill_vars(path, vars);
    // A value an earlier step failed to capture.
    while let (Some(a), Some(b)) = (out.find('{'), out.find('}')) {
        out.replace_range(
            a..=b,
            "missing0000000000000000000000000000000000000000000000000000000",
        );
    }
    out
}

async fn run(target: &Target, steps: &[Step]) -> Vec<Seen> {
    let http = http();
    let mut vars: HashMap<&str, String> = HashMap::new();
    let mut seen = Vec::new();
    for step in steps {
        let url = format!("{}{}", target.base, fill(&step.path, &vars));
        let mut req = http.request(step.method.clone(), &url);
        req = match step.who {
            Who::Anonymous => req,
            Who::Account => req.basic_auth(&target.email, Some(&target.token)),
            Who::WrongToken => {
                req.basic_auth(&target.email, Some("wrongtoken0000000000000000000000"))
            }
        };
        req = match &step.body {
            Body::None => req,
            Body::Form(fields) => {
                let fields: Vec<(&str, String)> = fields
                    .iter()
                    .map(|(k, v)| (*k, fill_vars(v, &vars)))
                    .collect();
                req.form(&fields)
            }
            Body::Json(value) => {
                let text = fill_vars(&value.to_string(), &vars);
                req.json(&serde_json::from_str::<Value>(&text).unwrap())
            }
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", step.kind));
        let status = resp.status().as_u16();
        let intended = resp
            .headers()
            .get("x-ots-intended-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        if let Ok(dir) = std::env::var("OTS_DIFF_DUMP") {
            let slug: String = step
                .kind
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let file = format!("{dir}/{:02}-{slug}.{}.txt", seen.len(), target.name);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(file, format!("{} {url}\n{status}\n{text}\n", step.method));
        }
        let body = serde_json::from_str::<Value>(&text).unwrap_or_else(|_| {
            Value::String(format!(
                "<not JSON: {}>",
                text.chars().take(80).collect::<String>()
            ))
        });
        for (name, pointer) in &step.capture {
            if let Some(v) = body.pointer(pointer).and_then(Value::as_str) {
                vars.insert(name, v.to_owned());
            }
        }
        let mut body = mask(&body, &target.base, &step.random, "");
        if step.unordered {
            sort_lists(&mut body);
        }
        seen.push(Seen {
            status,
            intended,
            body,
        });
    }
    seen
}

/// Fields whose values are times (Unix seconds, int or float) or random ids.
const TIMES: &[&str] = &[
    "created",
    "updated",
    "received",
    "revealed",
    "burned",
    "shared",
    "previewed",
    "viewed",
    "first_access",
    "last_access",
    "timestamp",
    "expiration",
    "since",
    "now",
];
const RANDOM: &[&str] = &["request_id", "owner_id", "objid", "extid", "custid_uuid"];
/// Live lifetimes, which tick while the sequence runs: compared to the ten seconds.
const LIVE_TTLS: &[&str] = &[
    "metadata_ttl",
    "secret_ttl",
    "receipt_ttl",
    "expiration_in_seconds",
    "secret_realttl",
];

fn mask(value: &Value, base: &str, random: &[&str], field: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask(v, base, random, k)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask(v, base, random, field)).collect())
        }
        Value::Null => Value::Null,
        _ if random.contains(&field) || RANDOM.contains(&field) => json!("<random>"),
        Value::Number(n) if TIMES.contains(&field) => {
            json!(if n.is_f64() {
                "<time: float>"
            } else {
                "<time: int>"
            })
        }
        Value::Number(n) if LIVE_TTLS.contains(&field) && n.as_u64().is_some() => {
            json!((n.as_u64().unwrap() + 5) / 10 * 10)
        }
        Value::String(s) if field.ends_with("shortid") || field.ends_with("shortkey") => {
            json!(if s.len() == 8 {
                "<8 chars>".to_owned()
            } else {
                format!("<{} chars>", s.len())
            })
        }
        Value::String(s) if is_uuid(s) => json!("<uuid>"),
        Value::String(s) => json!(mask_text(&s.replace(base, "<base>"))),
        other => other.clone(),
    }
}

/// An objid as the genuine server gives its customers: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Sorts every list by its items' JSON text, so that two lists with the same items compare equal.
fn sort_lists(value: &mut Value) {
    match value {
        Value::Array(items) => {
            items.iter_mut().for_each(sort_lists);
            items.sort_by_key(Value::to_string);
        }
        Value::Object(map) => map.values_mut().for_each(sort_lists),
        _ => {}
    }
}

/// Replaces every run of 31 or more `[0-9a-z]` (a key, also inside a path or URL) by `<key>`.
fn mask_text(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 31 {
            out.push_str("<key>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || c.is_ascii_lowercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Comparing

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 70 {
        format!("{}…", &s[..70])
    } else {
        s
    }
}

/// (path, how it differs): genuine first, ots-testserver second.
fn diff(path: &str, genuine: &Value, test: &Value, out: &mut Vec<(String, String)>) {
    match (genuine, test) {
        (Value::Object(g), Value::Object(t)) => {
            for (k, gv) in g {
                let p = format!("{path}/{k}");
                match t.get(k) {
                    Some(tv) => diff(&p, gv, tv, out),
                    None => out.push((p, format!("only genuine: {}", short(gv)))),
                }
            }
            for (k, tv) in t {
                if !g.contains_key(k) {
                    out.push((
                        format!("{path}/{k}"),
                        format!("only testserver: {}", short(tv)),
                    ));
                }
            }
        }
        (Value::Array(g), Value::Array(t)) => {
            if g.len() != t.len() {
                out.push((path.to_owned(), format!("{} items vs {}", g.len(), t.len())));
            }
            for (i, (gv, tv)) in g.iter().zip(t).enumerate() {
                diff(&format!("{path}/{i}"), gv, tv, out);
            }
        }
        (g, t) if type_name(g) != type_name(t) => out.push((
            path.to_owned(),
            format!(
                "{} {} vs {} {}",
                type_name(g),
                short(g),
                type_name(t),
                short(t)
            ),
        )),
        (g, t) if g != t => out.push((path.to_owned(), format!("{} vs {}", short(g), short(t)))),
        _ => {}
    }
}

fn differences(genuine: &Seen, test: &Seen) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if genuine.status != test.status {
        out.push((
            "status".to_owned(),
            format!("{} vs {}", genuine.status, test.status),
        ));
    }
    if genuine.intended != test.intended {
        out.push((
            "x-ots-intended-status".to_owned(),
            format!("{:?} vs {:?}", genuine.intended, test.intended),
        ));
    }
    diff("", &genuine.body, &test.body, &mut out);
    out
}

fn explained(kind: &str, path: &str) -> Option<&'static str> {
    EXPLAINED.iter().find_map(|(k, p, why)| {
        let under = path == *p || path.starts_with(&format!("{p}/"));
        (*k == kind && under).then_some(*why)
    })
}

/// One line for the table: status plus what names the answer.
fn gist(seen: &Seen) -> String {
    let b = &seen.body;
    let pick = ["error_type", "error", "message", "state"]
        .iter()
        .find_map(|f| {
            b.get(*f)
                .filter(|v| !v.is_null())
                .map(|v| format!("{f}={}", short(v)))
        })
        .or_else(|| b.pointer("/record/state").map(|v| format!("state={v}")))
        .unwrap_or_default();
    format!("{} {pick}", seen.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs the genuine Onetime Secret server (built on first use, ~11 min): -- --ignored"]
async fn ots_testserver_answers_every_operator_call_as_the_genuine_server_does() {
    let Some(genuine) = tokio::task::spawn_blocking(genuine::start).await.unwrap() else {
        return;
    };
    // The genuine server runs self-hosted without billing: an account's v2 ttl is bounded only
    // by MAX_TTL, 365 days (base_secret_action.rb:100-133, with_entitlements.rb:43); v1 stays
    // at 30 days on both.
    let test = TestServer::start(Config {
        accounts: vec![Account::new(genuine.email.clone(), "testserver-token")],
        ttl_max_authenticated: 365 * 86_400,
        ..Config::default()
    })
    .await
    .unwrap();
    let steps = steps();
    let genuine_seen = run(
        &Target {
            name: "genuine",
            base: genuine.url.clone(),
            email: genuine.email.clone(),
            token: genuine.token.clone(),
        },
        &steps,
    )
    .await;
    let test_seen = run(
        &Target {
            name: "testserver",
            base: test.url(),
            email: genuine.email.clone(),
            token: "testserver-token".to_owned(),
        },
        &steps,
    )
    .await;

    let mut table = String::new();
    let mut unexplained = Vec::new();
    let (mut same, mut differ, mut explained_kinds) = (0, 0, 0);
    for ((step, g), t) in steps.iter().zip(&genuine_seen).zip(&test_seen) {
        let diffs = differences(g, t);
        if diffs.is_empty() {
            same += 1;
            let _ = writeln!(table, "| {} | same | {} |", step.kind, gist(g));
            continue;
        }
        differ += 1;
        let open: Vec<_> = diffs
            .iter()
            .filter(|(p, _)| explained(step.kind, p).is_none())
            .collect();
        if open.is_empty() {
            explained_kinds += 1;
        }
        let how: Vec<String> = diffs
            .iter()
            .map(|(p, h)| match explained(step.kind, p) {
                Some(_) => format!("{p}: {h} (explained)"),
                None => format!("{p}: {h}"),
            })
            .collect();
        let _ = writeln!(
            table,
            "| {} | differs | genuine {} / testserver {}: {} |",
            step.kind,
            gist(g),
            gist(t),
            how.join("; ")
        );
        for (p, h) in open {
            unexplained.push(format!("{}: {p}: {h}", step.kind));
        }
    }
    println!("| request kind | verdict | how |\n|---|---|---|\n{table}");
    println!(
        "{} request kinds compared: {same} same, {differ} differ ({explained_kinds} of them only in explained ways)",
        steps.len()
    );
    assert!(
        unexplained.is_empty(),
        "ots-testserver differs from the genuine server:\n{}",
        unexplained.join("\n")
    );
}

/// Without the genuine server's sources, `up` (and so every genuine-server test) stops at once
/// with exit status 3 and one line saying how to provide them, and starts nothing.
#[test]
fn without_sources_up_says_in_one_line_how_to_provide_them() {
    let empty = std::env::temp_dir().join(format!("real-ots-no-sources-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let dir = empty.join("state");
    let out = std::process::Command::new(genuine::script("up"))
        .arg(&dir)
        .env("OTS_REAL_SOURCES", &empty)
        .output()
        .expect("run testing/real-ots/up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("OTS_REAL_SOURCES") && stderr.contains("testing/real-ots/README.md"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.exists(), "nothing started, nothing written");
    std::fs::remove_dir_all(&empty).unwrap();
}
