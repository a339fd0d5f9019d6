//! The OTS client speaks TLS through rustls with the ring provider, offers HTTP/2 and
//! HTTP/1.1, and refuses a server whose certificate no trusted authority signed.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ots_operator::ots::{ApiVersion, ClientConfig, OtsClient, OtsError, ShareRequest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

/// Self-signed, test-only certificate for `localhost` and 127.0.0.1; no system trusts it.
const UNTRUSTED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUc2EApGIPi1aQk3gDUTP+pebMD5UwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyODE1NTExN1oYDzIxMjYxMTA0
MTU1MTE3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARdDZJntmR4cVgBfUkq1Fo9oWFTC0tD7BmwjS/xlejMMWwoR6NTUydm
zsX4w8w92gWFPojR2FwadNlqJnz0kpO+o28wbTAdBgNVHQ4EFgQUSW1Fj3PZ7foG
noHGsJXaX4HOMDAwHwYDVR0jBBgwFoAUSW1Fj3PZ7foGnoHGsJXaX4HOMDAwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgHqy+MsEm3aW6+sap1VNra3wyRwWxB3vAyqAmeuwFbcQCIG8V
lXZ+fzWJrDPRP7Wir3Tn4cONYiRr2ALPaLZ0D2o1
-----END CERTIFICATE-----
";

/// Its key; it protects nothing but this test.
const UNTRUSTED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyY8BaPyg4G/I5gpO
OJ2tXLd1LOxWFO4GrzJe6uPkC6OhRANCAARdDZJntmR4cVgBfUkq1Fo9oWFTC0tD
7BmwjS/xlejMMWwoR6NTUydmzsX4w8w92gWFPojR2FwadNlqJnz0kpO+
-----END PRIVATE KEY-----
";

/// What the TLS server saw in the client's hello.
#[derive(Debug)]
struct Hello {
    alpn: Vec<String>,
}

/// A one-connection TLS server with the untrusted certificate; reports the client hello.
fn untrusted_tls_server() -> (Url, mpsc::Receiver<Hello>) {
    let cert = CertificateDer::from_pem_slice(UNTRUSTED_CERT.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(UNTRUSTED_KEY.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut acceptor = rustls::server::Acceptor::default();
        let accepted = loop {
            match acceptor.read_tls(&mut stream) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            match acceptor.accept() {
                Ok(Some(accepted)) => break accepted,
                Ok(None) => {}
                Err(_) => return,
            }
        };
        let alpn = accepted
            .client_hello()
            .alpn()
            .map(|protocols| {
                protocols
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let _ = tx.send(Hello { alpn });
        if let Ok(mut conn) = accepted.into_connection(config) {
            while conn.is_handshaking() {
                if conn.complete_io(&mut stream).is_err() {
                    break;
                }
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_as_unavailable() {
    let (url, hello) = untrusted_tls_server();
    let client = OtsClient::new(ClientConfig::new(url).with_api(ApiVersion::V1)).unwrap();
    let err = client.share(&ShareRequest::new("x")).await.unwrap_err();
    assert!(
        matches!(&err, OtsError::Unavailable { detail } if detail.to_ascii_lowercase().contains("certificate")),
        "{err:?}"
    );
    let hello = hello
        .recv_timeout(Duration::from_secs(30))
        .expect("the client sent a TLS client hello");
    assert_eq!(hello.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
}
