//! No secret value, passphrase, API token or full key reaches an error message, a `Debug`
//! output or a log line of the OTS client, at any log level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ots_operator::ots::{
    ApiVersion, ClientConfig, Credentials, ExposeSecret, GenerateRequest, OtsClient, OtsError,
    SecretString, ShareRequest,
};
use ots_testserver::{Account, Config, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

const EMAIL: &str = "carol@example.com";
const TOKEN: &str = "TOKEN-zq81-never-log-me";
const SECRET: &str = "SECRET-value-ak47-never-log-me";
const PASSPHRASE: &str = "PASSPHRASE-bx19-never-log-me";
const WRONG_PASSPHRASE: &str = "WRONGPASS-cy28-never-log-me";

/// Everything the client logs on this thread, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server that answers every request with `response`.
async fn canned(response: String) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

fn json_answer(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn no_secret_passphrase_token_or_full_key_appears_in_errors_debug_or_logs() {
    // The server runs on its own thread so that only the client's logs are captured here.
    let server = TestServer::start_in_thread(Config {
        accounts: vec![Account::new(EMAIL, TOKEN)],
        ..Config::default()
    })
    .unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let base = Url::parse(&server.url()).unwrap();
    let passphrase = SecretString::from(PASSPHRASE);
    let wrong = SecretString::from(WRONG_PASSPHRASE);
    let mut shown: Vec<String> = Vec::new();
    let mut forbidden: Vec<String> = vec![
        SECRET.into(),
        PASSPHRASE.into(),
        WRONG_PASSPHRASE.into(),
        TOKEN.into(),
        base64(format!("{EMAIL}:{TOKEN}").as_bytes()),
    ];
    let mut errors: Vec<OtsError> = Vec::new();

    for api in [ApiVersion::V1, ApiVersion::V2] {
        let config = ClientConfig::new(base.clone())
            .with_api(api)
            .with_credentials(Credentials::new(EMAIL, TOKEN));
        shown.push(format!("{config:?}"));
        let client = OtsClient::new(config).unwrap();
        shown.push(format!("{client:?}"));

        let request = ShareRequest::new(SECRET).with_passphrase(PASSPHRASE);
        shown.push(format!("{request:?}"));
        let receipt = client.share(&request).await.unwrap();
        shown.push(format!("{receipt:?}"));
        let secret_key = receipt.secret_key.clone().unwrap();
        forbidden.push(secret_key.clone());
        forbidden.push(receipt.metadata_key.clone());

        errors.push(client.reveal(&secret_key, Some(&wrong)).await.unwrap_err());
        errors.push(
            client
                .burn(&receipt.metadata_key, Some(&wrong))
                .await
                .unwrap_err(),
        );
        let revealed = client.reveal(&secret_key, Some(&passphrase)).await.unwrap();
        assert_eq!(revealed.expose_secret(), SECRET);
        shown.push(format!("{revealed:?}"));
        errors.push(
            client
                .reveal(&secret_key, Some(&passphrase))
                .await
                .unwrap_err(),
        );
        shown.push(format!(
            "{:?}",
            client.receipt(&receipt.metadata_key).await.unwrap()
        ));

        let (generated, value) = client
            .generate(&GenerateRequest {
                passphrase: Some(PASSPHRASE.into()),
                length: Some(40),
                ..GenerateRequest::default()
            })
            .await
            .unwrap();
        forbidden.push(value.expose_secret().to_owned());
        forbidden.push(generated.metadata_key.clone());
        forbidden.extend(generated.secret_key.clone());
        shown.push(format!("{value:?}"));
        let burned = client
            .burn(&generated.metadata_key, Some(&passphrase))
            .await
            .unwrap();
        shown.push(format!("{burned:?}"));
        shown.push(format!("{:?}", client.recent().await.unwrap()));

        let impostor = OtsClient::new(
            ClientConfig::new(base.clone())
                .with_api(api)
                .with_credentials(Credentials::new(EMAIL, format!("{TOKEN}-x"))),
        )
        .unwrap();
        errors.push(impostor.share(&request).await.unwrap_err());
        errors.push(
            client
                .share(&ShareRequest::new(SECRET).with_passphrase("abc"))
                .await
                .unwrap_err(),
        );
    }

    // Servers that echo the secret back in malformed answers.
    let echo_truncated = canned(json_answer("200 OK", &format!(r#"{{"value":"{SECRET}"#))).await;
    let echo_wrong_type = canned(json_answer(
        "200 OK",
        &format!(r#"{{"metadata_key":7,"state":["{SECRET}"],"value":"{SECRET}"}}"#),
    ))
    .await;
    let echo_error = canned(json_answer(
        "404 Not Found",
        &format!(r#"{{"message":"Unknown secret","secret_key":"{SECRET}"}}"#),
    ))
    .await;
    for url in [echo_truncated, echo_wrong_type, echo_error] {
        for api in [ApiVersion::V1, ApiVersion::V2] {
            let client = OtsClient::new(
                ClientConfig::new(url.clone())
                    .with_api(api)
                    .with_credentials(Credentials::new(EMAIL, TOKEN)),
            )
            .unwrap();
            errors.push(client.share(&ShareRequest::new(SECRET)).await.unwrap_err());
            errors.push(
                client
                    .generate(&GenerateRequest::default())
                    .await
                    .unwrap_err(),
            );
            // `{"value": …}` with other junk is a valid reveal answer, so only errors are kept.
            errors.extend(client.reveal("abc123", Some(&passphrase)).await.err());
        }
    }

    for err in &errors {
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    }
    let logs = captured.text();
    assert!(
        logs.contains("OTS request"),
        "the client logs its requests:\n{logs}"
    );
    assert!(
        logs.contains("op=\"share\"") || logs.contains("op=share"),
        "{logs}"
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OtsError::Protocol { .. }))
    );
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "logs contain {needle:?}:\n{logs}"
        );
        for text in &shown {
            assert!(
                !text.contains(needle.as_str()),
                "{text:?} contains {needle:?}"
            );
        }
    }
}

#[test]
fn base64_helper_matches_the_standard_encoding() {
    assert_eq!(base64(b"a@b.c:tok"), "YUBiLmM6dG9r");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
}
