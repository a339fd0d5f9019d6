//! A self-hosted server behind a private CA: refused with `TlsUntrusted` (Failed, naming the
//! server and the fix) while the operator does not trust the CA, and shared to once it does
//! (`--ots-ca-file`, which the chart's `caBundle` value sets up).

mod support;

use ots_testserver::Config;
use serde_json::json;
use support::operator::*;
use support::tls::{ca_file, tls_front};

/// How the operator is told about the private CA.
#[derive(Clone, Copy, PartialEq)]
enum Trust {
    Nothing,
    /// `--ots-ca-file`.
    CaFile,
    /// What the chart's `caBundle` value does: the system bundle plus a mounted directory.
    ChartCaBundle,
}

async fn share_through_tls(prefix: &str, trust: Trust) -> (kube::Client, String, String) {
    let (client, ns) = setup(prefix).await;
    let server = ots_server(Config::default());
    let front = tls_front(server.addr()).await;
    let front_url = front.as_str().trim_end_matches('/').to_owned();
    let mut args = fast_args(&ns, &front_url);
    let ca_dir = std::env::temp_dir().join(format!("ots-test-ca-dir-{}", std::process::id()));
    let mut env = vec![("RUST_LOG".to_owned(), "info".to_owned())];
    match trust {
        Trust::Nothing => {}
        Trust::CaFile => {
            args.extend(["--ots-ca-file".to_owned(), ca_file().display().to_string()]);
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
    let operator = Operator::start_with(&args, &env);
    create_secret(&client, &ns, "db", &[("password", b"behind-a-private-ca")]).await;
    create_share(
        &client,
        &ns,
        "private",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    std::mem::forget(operator);
    std::mem::forget(server);
    (client, ns, front_url)
}

#[tokio::test]
async fn a_server_behind_an_untrusted_ca_is_tls_untrusted_and_names_the_fix() {
    let (client, ns, front) = share_through_tls("tls-untrusted", Trust::Nothing).await;
    let failed = wait_for(&client, &ns, "private", "TlsUntrusted", |o| {
        ready_reason_is(o, "TlsUntrusted")
    })
    .await;
    assert_eq!(phase(&failed), "Failed", "not an outage to wait out");
    let message = ready(&failed).unwrap().2;
    assert!(message.contains(&front), "{message}");
    assert!(message.contains("caBundle"), "{message}");
    wait_event(&client, &ns, "private", "Warning", "TlsUntrusted").await;
}

#[tokio::test]
async fn a_server_behind_a_private_ca_is_shared_to_once_the_ca_is_trusted() {
    let (client, ns, front) = share_through_tls("tls-trusted", Trust::CaFile).await;
    let shared = wait_shared(&client, &ns, "private").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
}

#[tokio::test]
async fn the_charts_ca_bundle_mount_makes_a_private_ca_trusted() {
    let (client, ns, front) = share_through_tls("tls-chart-bundle", Trust::ChartCaBundle).await;
    let shared = wait_shared(&client, &ns, "private").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
}
