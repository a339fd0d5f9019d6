//! A self-hosted server behind a private CA: refused with `TlsUntrusted` (Failed, naming the
//! server and the fix) while the operator does not trust the CA, and shared to once it does
//! (`--ots-ca-file`, which the chart's `caBundle` value sets up).

mod support;

use ots_testserver::Config;
use support::operator::*;
use support::tls::{ca_file, tls_front};
use support::world::World;

/// How the operator is told about the private CA.
#[derive(Clone, Copy, PartialEq)]
enum Trust {
    Nothing,
    /// `--ots-ca-file`.
    CaFile,
    /// What the chart's `caBundle` value does: the system bundle plus a mounted directory.
    ChartCaBundle,
}

/// A World whose operator reaches its server only through a TLS front signed by the private CA,
/// trusting that CA as `trust` says, with share `private` of Secret `db` created; and the front's
/// URL.
async fn share_through_tls(prefix: &str, trust: Trust) -> (World, String) {
    let server = ots_server(Config::default());
    let front = tls_front(server.addr()).await;
    let front_url = front.as_str().trim_end_matches('/').to_owned();
    let ca_dir = std::env::temp_dir().join(format!("ots-test-ca-dir-{}", std::process::id()));
    let mut extra = Vec::new();
    let mut env = vec![("RUST_LOG".to_owned(), "info".to_owned())];
    match trust {
        Trust::Nothing => {}
        Trust::CaFile => {
            extra.extend(["--ots-ca-file".to_owned(), ca_file().display().to_string()]);
        }
        Trust::ChartCaBundle => {
            std::fs::create_dir_all(&ca_dir).unwrap();
            std::fs::copy(ca_file(), ca_dir.join("ca.crt")).unwrap();
            env.push((
                "SSL_CERT_FILE".to_owned(),
                "/etc/ssl/certs/ca-certificates.crt".to_owned(),
            ));
            env.push(("SSL_CERT_DIR".to_owned(), ca_dir.display().to_string()));
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let w = World::with_operator(prefix, server, |ns, _| {
        let mut args = fast_args(ns, &front_url);
        args.extend(extra);
        Operator::start_with(&args, &env)
    })
    .await;
    w.secret("db", &[("password", b"behind-a-private-ca")])
        .await;
    w.share_key("private", "db", "password").await;
    (w, front_url)
}

#[tokio::test]
async fn a_server_behind_an_untrusted_ca_is_tls_untrusted_and_names_the_fix() {
    let (w, front) = share_through_tls("tls-untrusted", Trust::Nothing).await;
    let failed = w
        .wait_for("private", "TlsUntrusted", |o| {
            ready_reason_is(o, "TlsUntrusted")
        })
        .await;
    assert_eq!(phase(&failed), "Failed", "not an outage to wait out");
    let message = ready(&failed).unwrap().2;
    assert!(message.contains(&front), "{message}");
    assert!(message.contains("caBundle"), "{message}");
    w.wait_event("private", "Warning", "TlsUntrusted").await;
}

#[tokio::test]
async fn a_server_behind_a_private_ca_is_shared_to_once_the_ca_is_trusted() {
    let (w, front) = share_through_tls("tls-trusted", Trust::CaFile).await;
    let shared = w.shared("private").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
}

#[tokio::test]
async fn the_charts_ca_bundle_mount_makes_a_private_ca_trusted() {
    let (w, front) = share_through_tls("tls-chart-bundle", Trust::ChartCaBundle).await;
    let shared = w.shared("private").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
}
