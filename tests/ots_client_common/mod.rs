//! Shared setup for the `ots_client*` integration tests: a test server and clients for it.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use ots_operator::ots::{
    ApiVersion, ClientConfig, Credentials, OtsClient, OtsError, Receipt, SecretString,
};
use ots_testserver::{Account, Config, TestServer};
use url::Url;

/// The account every test server knows.
pub const EMAIL: &str = "alice@example.com";
/// Its API token.
pub const TOKEN: &str = "tok-alice-0123456789";

/// Both pinned API versions, for tests that must hold on each.
pub const VERSIONS: [ApiVersion; 2] = [ApiVersion::V1, ApiVersion::V2];

/// A test server with one account, on the current runtime.
pub async fn server() -> TestServer {
    server_with(Config::default()).await
}

/// A test server with `config` plus the standard account.
pub async fn server_with(mut config: Config) -> TestServer {
    config.accounts.push(Account::new(EMAIL, TOKEN));
    TestServer::start(config).await.expect("test server starts")
}

/// The server's base URL.
pub fn base(server: &TestServer) -> Url {
    Url::parse(&server.url()).expect("server URL parses")
}

/// An anonymous client for `server` speaking `api`.
pub fn anon(server: &TestServer, api: ApiVersion) -> OtsClient {
    OtsClient::new(ClientConfig::new(base(server)).with_api(api)).expect("client builds")
}

/// A client for `server` speaking `api` as the standard account.
pub fn authed(server: &TestServer, api: ApiVersion) -> OtsClient {
    OtsClient::new(
        ClientConfig::new(base(server))
            .with_api(api)
            .with_credentials(Credentials::new(EMAIL, TOKEN)),
    )
    .expect("client builds")
}

/// A client with a short timeout, for fault tests.
pub fn impatient(server: &TestServer, api: ApiVersion, timeout: Duration) -> OtsClient {
    OtsClient::new(
        ClientConfig::new(base(server))
            .with_api(api)
            .with_timeout(timeout),
    )
    .expect("client builds")
}

/// Reveals, without a passphrase, the secret behind a receipt fresh from `share` or `generate`
/// (the only receipts that show the secret key).
pub async fn reveal_shared(
    client: &OtsClient,
    receipt: &Receipt,
) -> Result<SecretString, OtsError> {
    let key = receipt
        .secret_key
        .as_deref()
        .expect("a new receipt shows the secret key");
    client.reveal(key, None).await
}

/// How many requests of `operation` the server answered.
pub fn count(server: &TestServer, operation: &str) -> u64 {
    server
        .stats()
        .by_operation
        .get(operation)
        .copied()
        .unwrap_or(0)
}

/// Serves `app` on a free local port in the background: its base URL.
pub async fn serve(app: axum::Router) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}
