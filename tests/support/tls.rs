//! TLS for tests: a self-signed certificate no system trusts, and a TLS front that forwards to a
//! plain-HTTP test server (what a self-hosted server behind a private CA looks like).
#![allow(dead_code)]

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

/// Self-signed, test-only certificate for `localhost` and 127.0.0.1; no system trusts it.
pub const UNTRUSTED_CERT: &str = "-----BEGIN CERTIFICATE-----
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
pub const UNTRUSTED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyY8BaPyg4G/I5gpO
OJ2tXLd1LOxWFO4GrzJe6uPkC6OhRANCAARdDZJntmR4cVgBfUkq1Fo9oWFTC0tD
7BmwjS/xlejMMWwoR6NTUydmzsX4w8w92gWFPojR2FwadNlqJnz0kpO+
-----END PRIVATE KEY-----
";

/// A private CA for tests (100 years, test-only): it signed [`PRIVATE_LEAF_CERT`]; no system
/// trusts it.
pub const PRIVATE_CA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBozCCAUmgAwIBAgIUDuswuh0RxMstzX4bbaCmyweleV8wCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTb3RzLXRlc3QtcHJpdmF0ZS1jYTAgFw0yNjExMzAwMDM5NDZa
GA8yMTI2MTEwNjAwMzk0NlowHjEcMBoGA1UEAwwTb3RzLXRlc3QtcHJpdmF0ZS1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABOjYbIVif4lZSbyi3gSFklkAyk69
4y8qlol3U4cxp1E92yb8YqvfowAPe+cctJlqzNQn6zKF5bC/Kael644jQ9yjYzBh
MB0GA1UdDgQWBBQKPSWfDeoTtx80b80Ydu84y+ytzTAfBgNVHSMEGDAWgBQKPSWf
DeoTtx80b80Ydu84y+ytzTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIB
BjAKBggqhkjOPQQDAgNIADBFAiB5UgjbLE1X8QoIOiuOttZ26kSxIp2/FObeMKaL
eLlF8QIhAJ63KS2oCllp/iFJQfKwZynZkR2Dmm8Rs515c29cbfvX
-----END CERTIFICATE-----
";

/// A server certificate for `localhost` and 127.0.0.1 signed by [`PRIVATE_CA_CERT`].
pub const PRIVATE_LEAF_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIByDCCAW+gAwIBAgIUWImV1GqgbmSBhIWB080wOuaEZkwwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTb3RzLXRlc3QtcHJpdmF0ZS1jYTAgFw0yNjExMzAwMDM5NDZa
GA8yMTI2MTEwNjAwMzk0NlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEK1ebUYCsmOOVBWqu/UFDq1jEZvfh43vlxkWm+qbm
Ho/vEhvocOTsnIUjJZvzpe6qKP+ryevKq7ODZEvGgk3PiqOBkjCBjzAMBgNVHRMB
Af8EAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAaBgNV
HREEEzARgglsb2NhbGhvc3SHBH8AAAEwHQYDVR0OBBYEFEpOf7rsYeR4jDlJp2f3
NNf9/I8vMB8GA1UdIwQYMBaAFAo9JZ8N6hO3HzRvzRh27zjL7K3NMAoGCCqGSM49
BAMCA0cAMEQCIEQYC9Rw1L5FKtlRr9Gc5sDajr6cEGHxWzjLHLnBkkB5AiA4PCyt
avxJAn1NG6jUDbyZoPghml3ajGm0wInfv6GJdg==
-----END CERTIFICATE-----
";

/// Its key; it protects nothing but tests.
pub const PRIVATE_LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYElzVrb1nq1bKdu+
/5zAvPSiNy6PvqMq0QOn4OzRaf2hRANCAAQrV5tRgKyY45UFaq79QUOrWMRm9+Hj
e+XGRab6puYej+8SG+hw5OychSMlm/Ol7qoo/6vJ68qrs4NkS8aCTc+K
-----END PRIVATE KEY-----
";

/// Serves TLS with [`PRIVATE_LEAF_CERT`] on a loopback port and forwards every connection to
/// `upstream` (plain HTTP). Returns `https://127.0.0.1:PORT`. Runs until the process ends.
pub async fn tls_front(upstream: SocketAddr) -> Url {
    let cert = CertificateDer::from_pem_slice(PRIVATE_LEAF_CERT.as_bytes()).expect("the test cert");
    let key = PrivateKeyDer::from_pem_slice(PRIVATE_LEAF_KEY.as_bytes()).expect("the test key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("a server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the TLS front");
    let url = Url::parse(&format!(
        "https://{}",
        listener.local_addr().expect("an address")
    ))
    .expect("a URL");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    url
}

/// Writes [`PRIVATE_CA_CERT`] to a file and returns its path (for `--ots-ca-file`).
pub fn ca_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ots-test-ca-{}.pem", std::process::id()));
    std::fs::write(&path, PRIVATE_CA_CERT).expect("write the CA file");
    path
}
