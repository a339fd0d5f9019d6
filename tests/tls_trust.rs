//! A self-hosted server behind a private CA: refused with `TlsUntrusted` (Failed, naming the
//! server and the fix) while the operator does not trust the CA, and shared to once it does
//! (`--ots-ca-file`, which the chart's `caBundle` value sets up).

mod support;

use ots_testserver::Config;
use serde_json::json;
use support::operator::*;
use support::tls::{ca_file, tls_front};

async fn share_through_tls(prefix: &str, trust: bool) -> (kube::Client, String, String) {
    let (client, ns) = setup(prefix).await;
    let server = ots_server(Config::default());
    let front = tls_front(server.addr()).await;
    let front_url = front.as_str().trim_end_matches('/').to_owned();
    let mut args = fast_args(&ns, &front_url);
    if trust {
        args.extend(["--ots-ca-file".to_owned(), ca_file().display().to_string()]);
    }
    let operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
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
    let (client, ns, front) = share_through_tls("tls-untrusted", false).await;
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
    let (client, ns, front) = share_through_tls("tls-trusted", true).await;
    let shared = wait_shared(&client, &ns, "private").await;
    let link = shared.status.unwrap().link.unwrap();
    assert!(link.starts_with(&format!("{front}/secret/")), "{link}");
}
