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
use support::tls::{UNTRUSTED_CERT, UNTRUSTED_KEY};
use url::Url;

mod support;

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
async fn an_untrusted_certificate_is_refused_as_tls_untrusted_naming_the_server() {
    let (url, hello) = untrusted_tls_server();
    let origin = url.origin().ascii_serialization();
    let client = OtsClient::new(ClientConfig::new(url).with_api(ApiVersion::V1)).unwrap();
    let err = client.share(&ShareRequest::new("x")).await.unwrap_err();
    assert!(
        matches!(&err, OtsError::TlsUntrusted { server, .. } if *server == origin),
        "{err:?}"
    );
    assert!(!err.is_transient(), "a private CA is no outage: {err}");
    assert!(err.to_string().contains("caBundle"), "{err}");
    let hello = hello
        .recv_timeout(Duration::from_secs(30))
        .expect("the client sent a TLS client hello");
    assert_eq!(hello.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
}
