//! [`OtsClient`]: validates input, picks the API version and dispatches to `v1.rs` or `v2.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::config::{ApiVersion, ClientConfig};
use super::error::OtsError;
use super::http::{self, Http, Op};
use super::types::{GenerateRequest, Receipt, ResolvedApi, ServerStatus, ShareRequest};
use super::{v1, v2, validate};

/// An async Onetime Secret client for one server and one identity.
///
/// Cloning is cheap (one `Arc`); clones share the connection pool and the resolved API version.
#[derive(Clone)]
pub struct OtsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    api: ApiVersion,
    /// The version `auto` resolved to; only definite answers are cached, never failures.
    resolved: OnceCell<ResolvedApi>,
}

impl fmt::Debug for OtsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtsClient")
            .field("base_url", &self.inner.http.base_url.as_str())
            .field("api", &self.inner.api)
            .field("resolved", &self.inner.resolved.get())
            .field(
                "username",
                &self.inner.http.credentials.as_ref().map(|c| &c.username),
            )
            .field("timeout", &self.inner.http.timeout)
            .finish()
    }
}

impl OtsClient {
    /// A client with its own connection pool. Does no I/O.
    pub fn new(config: ClientConfig) -> Result<Self, OtsError> {
        let http = Self::http_client(config.timeout)?;
        Self::with_http(config, http)
    }

    /// A client on a shared `reqwest::Client` (one connection pool for many servers and
    /// identities). The config's timeout still bounds every request. Does no I/O.
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Result<Self, OtsError> {
        let base_url = http::normalize_base_url(config.base_url)?;
        let resolved = match config.api {
            ApiVersion::Auto => OnceCell::new(),
            ApiVersion::V1 => OnceCell::new_with(Some(ResolvedApi::V1)),
            ApiVersion::V2 => OnceCell::new_with(Some(ResolvedApi::V2)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http: Http {
                    client: http,
                    base_url,
                    credentials: config.credentials,
                    timeout: config.timeout,
                },
                api: config.api,
                resolved,
            }),
        })
    }

    /// The pooled HTTP client [`OtsClient::new`] uses: rustls on the ring provider with the
    /// platform's trust store, connection reuse (HTTP/1.1 keep-alive and HTTP/2), connect and
    /// request timeouts, no redirects, `User-Agent: ots-operator/VERSION`.
    pub fn http_client(timeout: Duration) -> Result<reqwest::Client, OtsError> {
        http::build_client(timeout)
    }

    /// The server's base URL (normalized: no query or fragment).
    pub fn base_url(&self) -> &Url {
        &self.inner.http.base_url
    }

    /// Whether requests carry credentials (an account) rather than going anonymously.
    pub fn is_authenticated(&self) -> bool {
        self.inner.http.credentials.is_some()
    }

    /// The configured API version (possibly `auto`).
    pub fn configured_api(&self) -> ApiVersion {
        self.inner.api
    }

    /// The API version in use. For `auto`, the first call asks `GET /api/v2/status`: a status
    /// answer means v2; a 404 (or another sign that v2 is absent) means v1. The answer is kept
    /// for the client's lifetime; failures (outage, timeout, 429, bad credentials) are returned and
    /// asked again next time.
    pub async fn api_version(&self) -> Result<ResolvedApi, OtsError> {
        self.inner
            .resolved
            .get_or_try_init(|| probe(&self.inner.http))
            .await
            .copied()
    }

    /// The server's health (`GET /api/vN/status`). Credentials, when set, are checked too.
    pub async fn status(&self) -> Result<ServerStatus, OtsError> {
        match self.api_version().await? {
            ResolvedApi::V1 => v1::status(&self.inner.http).await,
            ResolvedApi::V2 => v2::status(&self.inner.http).await,
        }
    }

    /// Shares a value and returns its receipt. Input is checked before any request.
    pub async fn share(&self, req: &ShareRequest) -> Result<Receipt, OtsError> {
        validate::secret(&req.secret)?;
        if let Some(passphrase) = &req.passphrase {
            validate::passphrase(passphrase)?;
        }
        let ttl = req.ttl.map(validate::ttl).transpose()?;
        match self.api_version().await? {
            ResolvedApi::V1 => v1::share(&self.inner.http, req, ttl).await,
            ResolvedApi::V2 => v2::share(&self.inner.http, req, ttl).await,
        }
    }

    /// Has the server generate a value, share it, and return the receipt and the value.
    pub async fn generate(
        &self,
        req: &GenerateRequest,
    ) -> Result<(Receipt, SecretString), OtsError> {
        if let Some(passphrase) = &req.passphrase {
            validate::passphrase(passphrase)?;
        }
        let ttl = req.ttl.map(validate::ttl).transpose()?;
        match self.api_version().await? {
            ResolvedApi::V1 => v1::generate(&self.inner.http, req, ttl).await,
            ResolvedApi::V2 => v2::generate(&self.inner.http, req, ttl).await,
        }
    }

    /// Reveals (and so destroys) a secret. A wrong or missing passphrase is `NotFound` and does
    /// not consume the secret.
    pub async fn reveal(
        &self,
        secret_key: &str,
        passphrase: Option<&SecretString>,
    ) -> Result<SecretString, OtsError> {
        validate::key(secret_key)?;
        match self.api_version().await? {
            ResolvedApi::V1 => v1::reveal(&self.inner.http, secret_key, passphrase).await,
            ResolvedApi::V2 => v2::reveal(&self.inner.http, secret_key, passphrase).await,
        }
    }

    /// The receipt of a shared secret: its state and lifetimes.
    pub async fn receipt(&self, metadata_key: &str) -> Result<Receipt, OtsError> {
        validate::key(metadata_key)?;
        match self.api_version().await? {
            ResolvedApi::V1 => v1::receipt(&self.inner.http, metadata_key).await,
            ResolvedApi::V2 => v2::receipt(&self.inner.http, metadata_key).await,
        }
    }

    /// Burns an unread secret. A passphrase-protected secret needs its passphrase, even for its
    /// owner. A secret that is already gone is `NotFound`.
    pub async fn burn(
        &self,
        metadata_key: &str,
        passphrase: Option<&SecretString>,
    ) -> Result<Receipt, OtsError> {
        validate::key(metadata_key)?;
        match self.api_version().await? {
            ResolvedApi::V1 => v1::burn(&self.inner.http, metadata_key, passphrase).await,
            ResolvedApi::V2 => v2::burn(&self.inner.http, metadata_key, passphrase).await,
        }
    }

    /// The account's recent receipts (needs credentials).
    pub async fn recent(&self) -> Result<Vec<Receipt>, OtsError> {
        match self.api_version().await? {
            ResolvedApi::V1 => v1::recent(&self.inner.http).await,
            ResolvedApi::V2 => v2::recent(&self.inner.http).await,
        }
    }

    /// The reader's link: `BASE/secret/KEY`.
    pub fn secret_link(&self, secret_key: &str) -> Url {
        link(self.base_url(), "secret", secret_key)
    }

    /// The creator's link: `BASE/receipt/KEY` (prefer [`Receipt::receipt_link`], which uses the
    /// server's own `receipt_url` when it sent one).
    pub fn receipt_link(&self, metadata_key: &str) -> Url {
        link(self.base_url(), "receipt", metadata_key)
    }
}

/// `BASE/KIND/KEY`, with the key percent-encoded as a single path segment.
pub(crate) fn link(base_url: &Url, kind: &str, key: &str) -> Url {
    http::join(base_url, &[kind, key])
}

/// Asks `GET /api/v2/status` whether the server speaks v2.
async fn probe(http: &Http) -> Result<ResolvedApi, OtsError> {
    let op = Op::Probe;
    let request = http.request(Method::GET, ResolvedApi::V2, &["status"]);
    let reply = http.send(op, ResolvedApi::V2, None, request).await?;
    let status = reply.status;
    let resolved = if status.is_success() {
        let speaks_v2 = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .is_some_and(|value| v2::status_from(op, &value).is_ok());
        // A 200 that is not a status answer (a web page, a catch-all) means no v2 API here.
        if speaks_v2 {
            ResolvedApi::V2
        } else {
            ResolvedApi::V1
        }
    } else if status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
        )
    {
        // Not an answer about v2: report it and ask again next time.
        return Err(v2::error(op, &reply));
    } else {
        // 404, 405, 410, …: there is no v2 API on this server.
        ResolvedApi::V1
    };
    tracing::debug!(api = resolved.as_str(), "OTS API version resolved");
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::config::Credentials;

    fn config(url: &str) -> ClientConfig {
        ClientConfig::new(Url::parse(url).unwrap())
    }

    #[test]
    fn links_are_built_under_the_base_url() {
        let client = OtsClient::new(config("https://eu.onetimesecret.com")).unwrap();
        assert_eq!(
            client.secret_link("abc123").as_str(),
            "https://eu.onetimesecret.com/secret/abc123"
        );
        assert_eq!(
            client.receipt_link("def456").as_str(),
            "https://eu.onetimesecret.com/receipt/def456"
        );
        let sub = OtsClient::new(config("https://host/ots/")).unwrap();
        assert_eq!(sub.secret_link("k").as_str(), "https://host/ots/secret/k");
    }

    #[test]
    fn a_link_cannot_escape_its_path_segment() {
        let client = OtsClient::new(config("https://host")).unwrap();
        assert_eq!(
            client.secret_link("../api?x").as_str(),
            "https://host/secret/..%2Fapi%3Fx"
        );
    }

    #[test]
    fn invalid_base_urls_are_refused() {
        assert_eq!(
            OtsClient::new(config("ftp://host")).unwrap_err(),
            OtsError::InvalidInput(crate::ots::InputError::InvalidBaseUrl)
        );
    }

    #[test]
    fn client_debug_shows_no_token() {
        let client = OtsClient::new(
            config("https://host")
                .with_credentials(Credentials::new("alice@example.com", "tok-SECRET-99")),
        )
        .unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("tok-SECRET-99"), "{text}");
        assert!(text.contains("alice@example.com"), "{text}");
    }

    #[tokio::test]
    async fn pinned_versions_resolve_without_io() {
        // Port 9 on loopback: nothing listens, so any request would fail.
        let v1 = OtsClient::new(config("http://127.0.0.1:9").with_api(ApiVersion::V1)).unwrap();
        assert_eq!(v1.api_version().await, Ok(ResolvedApi::V1));
        let v2 = OtsClient::new(config("http://127.0.0.1:9").with_api(ApiVersion::V2)).unwrap();
        assert_eq!(v2.api_version().await, Ok(ResolvedApi::V2));
    }
}
