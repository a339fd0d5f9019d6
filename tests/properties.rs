//! Property tests of the two places where outside input meets the operator's logic:
//!
//! - value building (`controller::value`): any Secret data gives the documented value or the
//!   documented reason, and no error ever carries a secret value;
//! - OTS response handling: whatever bytes and status a server answers, the client returns an
//!   error of the right class and never panics; garbage from a 2xx is `OtsError::Protocol`, and no
//!   error quotes a body that is not the server's JSON error message.
//!
//! The number of cases per property follows `PROPTEST_CASES` (proptest's own variable; CI runs
//! the default of 256).

use ots_operator::Reason;
use ots_operator::controller::value::{MAX_SECRET_BYTES, build_passphrase, build_value};
use ots_operator::ots::{
    ApiVersion, ClientConfig, ExposeSecret, OtsClient, OtsError, SecretString, ShareRequest,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// ---------------------------------------------------------------- value building

/// Keys as Kubernetes allows them (a subset: letters, digits, `-`, `_`, `.`).
fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,12}"
}

/// Text values that carry a marker, so that a leak into an error is easy to see.
fn text_value() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{4e2d}\n]{0,40}".prop_map(|s| format!("VALUE-MARK{s}"))
}

/// Reads the all-keys form back as a person (or a script) would: `KEY=VALUE` lines, and
/// `KEY<<MARKER` here-documents whose value is every line up to the first line that is MARKER.
fn read_all_keys(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .expect("a key, then = or <<");
        let (key, rest) = line.split_at(end);
        if let Some(value) = rest.strip_prefix('=') {
            out.insert(key.to_owned(), value.to_owned());
        } else {
            let marker = rest.strip_prefix("<<").expect("= or <<");
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != marker).collect();
            out.insert(key.to_owned(), body.join("\n"));
        }
    }
    out
}

fn bytes_of(data: &BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    data.iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect()
}

fn assert_no_value_in(error: &ots_operator::Error, data: &BTreeMap<String, Vec<u8>>) {
    let shown = format!("{error} {error:?}");
    for value in data.values() {
        if let Ok(text) = std::str::from_utf8(value)
            && text.starts_with("VALUE-MARK")
        {
            assert!(!shown.contains(text), "an error shows a secret value");
        }
    }
    assert!(
        !shown.contains("VALUE-MARK"),
        "an error shows a secret value"
    );
}

proptest! {
    #[test]
    fn a_single_key_is_shared_exactly_as_stored(
        data in btree_map(key(), text_value(), 1..6),
        pick in any::<prop::sample::Index>(),
    ) {
        let keys: Vec<&String> = data.keys().collect();
        let key = keys[pick.index(keys.len())].clone();
        let value = build_value("s", &bytes_of(&data), Some(&key)).expect("a text value");
        prop_assert_eq!(value.expose_secret(), data[&key].as_str());
    }

    #[test]
    fn all_keys_are_shared_as_sorted_entries_that_read_back_exactly(
        data in btree_map(key(), text_value(), 1..6),
    ) {
        let value = build_value("s", &bytes_of(&data), None).expect("a text value");
        let text = value.expose_secret();
        prop_assert_eq!(read_all_keys(text), data.clone());
        // Values without a line break stay plain sorted KEY=VALUE lines.
        if data.values().all(|v| !v.contains('\n')) {
            let expected: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
            prop_assert_eq!(text, expected.join("\n"));
        }
    }

    #[test]
    fn a_value_is_accepted_exactly_up_to_ten_thousand_bytes(len in 1usize..12_000) {
        let data = BTreeMap::from([("k".to_owned(), vec![b'x'; len])]);
        match build_value("s", &data, Some("k")) {
            Ok(value) => prop_assert!(len <= MAX_SECRET_BYTES && value.expose_secret().len() == len),
            Err(e) => {
                prop_assert!(len > MAX_SECRET_BYTES);
                prop_assert_eq!(e.reason(), Reason::SecretTooLarge);
            }
        }
    }

    #[test]
    fn any_bytes_give_a_value_or_a_reason_and_never_leak(
        data in btree_map(key(), prop_oneof![
            text_value().prop_map(String::into_bytes),
            vec(any::<u8>(), 0..64),
            Just(vec![b'x'; 10_001]),
            Just(Vec::new()),
        ], 0..5),
        key in prop::option::of(key()),
    ) {
        match build_value("source", &data, key.as_deref()) {
            Ok(value) => {
                let text = value.expose_secret();
                prop_assert!(!text.is_empty() && text.len() <= MAX_SECRET_BYTES);
                if let Some(key) = &key {
                    prop_assert_eq!(text.as_bytes(), data[key].as_slice());
                }
            }
            Err(e) => {
                let reason = e.reason();
                prop_assert!(matches!(
                    reason,
                    Reason::KeyNotFound | Reason::SecretEmpty | Reason::SecretNotText | Reason::SecretTooLarge
                ), "unexpected reason {:?}", reason);
                if let Some(key) = &key {
                    let expected = match data.get(key) {
                        None => Reason::KeyNotFound,
                        Some(v) if std::str::from_utf8(v).is_err() => Reason::SecretNotText,
                        Some(v) if v.is_empty() => Reason::SecretEmpty,
                        Some(_) => Reason::SecretTooLarge,
                    };
                    prop_assert_eq!(reason, expected);
                }
                assert_no_value_in(&e, &data);
            }
        }
    }

    #[test]
    fn a_passphrase_is_accepted_iff_it_is_text_of_4_to_128_characters(
        bytes in prop_oneof![
            "[a-z\u{e9}\u{1f600}]{0,140}".prop_map(|s| format!("VALUE-MARK{s}").into_bytes()),
            "[a-z]{0,6}".prop_map(String::into_bytes),
            vec(any::<u8>(), 0..16),
        ],
    ) {
        let data = BTreeMap::from([("p".to_owned(), bytes.clone())]);
        let chars = std::str::from_utf8(&bytes).map(|t| t.chars().count()).ok();
        match build_passphrase("pass", "p", &data) {
            Ok(p) => {
                prop_assert!(matches!(chars, Some(4..=128)));
                prop_assert_eq!(p.expose_secret().as_bytes(), bytes.as_slice());
            }
            Err(e) => {
                prop_assert!(!matches!(chars, Some(4..=128)));
                prop_assert_eq!(e.reason(), Reason::InvalidPassphrase);
                assert_no_value_in(&e, &data);
            }
        }
    }
}

// ---------------------------------------------------------------- OTS responses

/// One canned answer: status, extra headers, body.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A loopback HTTP server that answers every request with the current [`Answer`] and closes
/// the connection.
struct CannedServer {
    url: url::Url,
    answer: Arc<Mutex<Answer>>,
}

fn canned_server() -> &'static CannedServer {
    static SERVER: OnceLock<CannedServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }));
        let shared = answer.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let answer = shared.lock().expect("answer").clone();
                answer_one(stream, &answer);
            }
        });
        CannedServer {
            url: url.parse().expect("url"),
            answer,
        }
    })
}

fn answer_one(mut stream: TcpStream, answer: &Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // Read the head and the body the client announced.
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let mut response = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.write_all(&answer.body);
    let _ = stream.flush();
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Status,
    Share,
    Receipt,
    Burn,
    Reveal,
}

/// Runs one client call against the canned answer; Ok values are reduced to `()`.
fn call(api: ApiVersion, op: Call, answer: Answer) -> Result<(), OtsError> {
    // One answer at a time: the properties run on parallel threads against one server.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = canned_server();
    *server.answer.lock().expect("answer") = answer;
    let client = OtsClient::new(
        ClientConfig::new(server.url.clone())
            .with_api(api)
            .with_timeout(Duration::from_secs(5)),
    )?;
    let key = "abcdef0123456789";
    runtime().block_on(async {
        match op {
            Call::Status => client.status().await.map(|_| ()),
            Call::Share => client
                .share(&ShareRequest::new("VALUE-MARK-shared"))
                .await
                .map(|_| ()),
            Call::Receipt => client.receipt(key).await.map(|_| ()),
            Call::Burn => client.burn(key, None).await.map(|_| ()),
            Call::Reveal => client
                .reveal(key, Some(&SecretString::from("VALUE-MARK-pass".to_owned())))
                .await
                .map(|_| ()),
        }
    })
}

fn api() -> impl Strategy<Value = ApiVersion> {
    prop_oneof![Just(ApiVersion::V1), Just(ApiVersion::V2)]
}

fn op() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Status),
        Just(Call::Share),
        Just(Call::Receipt),
        Just(Call::Burn),
        Just(Call::Reveal),
    ]
}

/// Bytes that are not JSON, with a marker inside.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..200).prop_map(|mut b| {
            b.splice(0..0, b"<html>BODY-MARK".iter().copied());
            b
        }),
        "[ -~]{0,80}".prop_map(|s| format!("BODY-MARK {s} {{").into_bytes()),
        Just(b"{\"metadata_key\": \"BODY-MARK".to_vec()),
    ]
}

/// Any JSON value a confused server could send, with markers in its strings.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[a-zA-Z0-9 ]{0,20}".prop_map(|s| serde_json::Value::from(format!("BODY-MARK{s}"))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            btree_map(
                prop_oneof![
                    Just("metadata_key".to_owned()),
                    Just("secret_key".to_owned()),
                    Just("state".to_owned()),
                    Just("ttl".to_owned()),
                    Just("record".to_owned()),
                    Just("receipt".to_owned()),
                    Just("secret".to_owned()),
                    Just("value".to_owned()),
                    Just("status".to_owned()),
                    Just("message".to_owned()),
                    Just("error".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn status_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(201),
        Just(204),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(413),
        Just(422),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        200u16..600,
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        prop_oneof![
            Just(("Content-Type".to_owned(), "application/json".to_owned())),
            Just(("Content-Type".to_owned(), "text/html".to_owned())),
            "[0-9]{1,12}".prop_map(|v| ("Retry-After".to_owned(), v)),
            "[ -~]{0,12}".prop_map(|v| ("Retry-After".to_owned(), v)),
            "[0-9]{1,4}".prop_map(|v| ("X-OTS-Intended-Status".to_owned(), v)),
        ],
        0..3,
    )
}

/// Whether a body is the `{success:false, message}` shape of v0.21–v0.23's `error_response`.
fn is_declined(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .is_some_and(|o| {
            o.get("success") == Some(&serde_json::Value::Bool(false))
                && ["error", "message"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()).filter(|s| !s.is_empty()))
                    .is_some()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn garbage_in_a_success_answer_is_a_protocol_error_that_does_not_quote_it(
        api in api(),
        op in op(),
        status in prop_oneof![Just(200u16), Just(201)],
        body in garbage(),
        headers in headers(),
    ) {
        let result = call(api, op, Answer { status, headers, body });
        match result {
            Err(OtsError::Protocol { detail }) => {
                prop_assert!(!detail.contains("BODY-MARK"), "the error quotes the body");
            }
            other => prop_assert!(false, "{:?} {:?}: expected a protocol error, got {:?}", api, op, other),
        }
    }

    #[test]
    fn any_answer_gives_a_result_of_the_right_class_and_never_a_panic(
        api in api(),
        op in op(),
        status in status_code(),
        body in prop_oneof![
            garbage(),
            json_value().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        ],
        headers in headers(),
    ) {
        // v0.21–v0.23 answer a declined action with `500 {success:false, message}`: a refusal.
        let declined = api == ApiVersion::V2 && status == 500 && is_declined(&body);
        let result = call(api, op, Answer { status, headers, body });
        if let Err(e) = &result {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains("VALUE-MARK"), "an error shows the secret or passphrase");
        }
        match status {
            500 if declined => prop_assert!(
                matches!(result, Err(OtsError::Refused { .. } | OtsError::Unavailable { .. })),
                "HTTP 500 success:false gave {:?}", result
            ),
            500..=599 => prop_assert!(
                matches!(result, Err(OtsError::Unavailable { .. })),
                "HTTP {} gave {:?}", status, result
            ),
            429 => prop_assert!(
                matches!(result, Err(OtsError::RateLimited { .. })),
                "HTTP 429 gave {:?}", result
            ),
            200..=299 => prop_assert!(
                !matches!(result, Err(OtsError::Unavailable { .. } | OtsError::RateLimited { .. })),
                "HTTP {} gave {:?}", status, result
            ),
            _ => prop_assert!(result.is_err(), "HTTP {} was taken for a success", status),
        }
    }
}
