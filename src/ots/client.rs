//! [`OtsClient`]: validates input, picks the API version and dispatches to `v1.rs` or `v2.rs`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::config::{ApiVersion, ClientConfig};
use super::error::OtsError;
use super::http::{self, Http, Op};
use super::types::{
    BurnAnswer, BurnOutcome, GenerateRequest, Receipt, ResolvedApi, SecretState, ServerStatus,
    ShareRequest, Unread,
};
use super::v2::{ReceiptLayout, VerifyRoute};
use super::{v1, v2, validate};

/// What clients learned about one server: the version `auto` resolved to, where its v2 keeps
/// receipts, and whether it refuses anonymous v2 calls. Only definite answers are kept, never
/// failures. Clones share it: give every client of one server the same `Learned` and each fact
/// is asked once per server, not once per client.
#[derive(Clone, Default)]
pub struct Learned {
    inner: Arc<LearnedInner>,
}

#[derive(Default)]
struct LearnedInner {
    api: OnceCell<ResolvedApi>,
    layout: OnceCell<ReceiptLayout>,
    verify_route: OnceCell<VerifyRoute>,
    /// Anonymous v2 calls are refused (`GuestRoutesDisabled`): anonymous `auto` clients use v1.
    guest_v2_off: AtomicBool,
}

impl fmt::Debug for Learned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Learned")
            .field("api", &self.inner.api.get())
            .field("layout", &self.inner.layout.get())
            .field(
                "guest_v2_off",
                &self.inner.guest_v2_off.load(Ordering::Relaxed),
            )
            .finish()
    }
}

/// An async Onetime Secret client for one server and one identity.
///
/// Cloning is cheap (one `Arc`); clones share the connection pool and what was learned about
/// the server (see [`Learned`]).
#[derive(Clone)]
pub struct OtsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    api: ApiVersion,
    learned: Learned,
    max_secret_bytes: usize,
}

impl fmt::Debug for OtsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtsClient")
            .field("base_url", &self.inner.http.base_url.as_str())
            .field("api", &self.inner.api)
            .field("learned", &self.inner.learned)
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
        Self::with_learned(config, http, Learned::default())
    }

    /// A client that shares what other clients of the same server learned (API version, receipt
    /// layout, guest routes). Does no I/O.
    pub fn with_learned(
        config: ClientConfig,
        http: reqwest::Client,
        learned: Learned,
    ) -> Result<Self, OtsError> {
        let base_url = http::normalize_base_url(config.base_url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http: Http {
                    client: http,
                    base_url,
                    credentials: config.credentials,
                    timeout: config.timeout,
                },
                api: config.api,
                learned,
                max_secret_bytes: config.max_secret_bytes,
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

    /// What this client (and the clients sharing it) learned about the server.
    pub fn learned(&self) -> &Learned {
        &self.inner.learned
    }

    /// The version `auto` resolved to, if it was asked already (no I/O).
    pub fn learned_api(&self) -> Option<ResolvedApi> {
        match self.inner.api {
            ApiVersion::V1 => Some(ResolvedApi::V1),
            ApiVersion::V2 => Some(ResolvedApi::V2),
            ApiVersion::Auto => self.inner.learned.inner.api.get().copied(),
        }
    }

    /// The API version in use. For `auto`, the first call asks `GET /api/v2/status`: a status
    /// answer means v2; a 404 (or another sign that v2 is absent) means v1. The answer is kept
    /// (in [`Learned`]); failures (outage, timeout, 429, bad credentials) are returned and asked
    /// again next time.
    pub async fn api_version(&self) -> Result<ResolvedApi, OtsError> {
        match self.inner.api {
            ApiVersion::V1 => Ok(ResolvedApi::V1),
            ApiVersion::V2 => Ok(ResolvedApi::V2),
            ApiVersion::Auto => self
                .inner
                .learned
                .inner
                .api
                .get_or_try_init(|| probe(&self.inner.http))
                .await
                .copied(),
        }
    }

    /// The version a call uses: [`Self::api_version`], except that an anonymous `auto` client
    /// uses v1 on a server known to refuse anonymous v2 calls.
    async fn call_api(&self) -> Result<ResolvedApi, OtsError> {
        let api = self.api_version().await?;
        let guest_off = self
            .inner
            .learned
            .inner
            .guest_v2_off
            .load(Ordering::Relaxed);
        Ok(
            if api == ResolvedApi::V2 && guest_off && self.may_fall_back() {
                ResolvedApi::V1
            } else {
                api
            },
        )
    }

    /// Whether a v2 `GuestRoutesDisabled` refusal may be answered by asking v1 instead: only for
    /// `auto` and anonymous clients (v1 is not gated; an explicit `v2` gets the refusal).
    fn may_fall_back(&self) -> bool {
        self.inner.api == ApiVersion::Auto && self.inner.http.credentials.is_none()
    }

    /// Makes one call on the server's API; when v2 refused it as an anonymous guest call (see
    /// [`Self::falls_back`]), makes it again on v1.
    async fn on_api<T, F, Fut>(&self, call: F) -> Result<T, OtsError>
    where
        F: Fn(ResolvedApi) -> Fut,
        Fut: Future<Output = Result<T, OtsError>>,
    {
        let api = self.call_api().await?;
        self.on_resolved_api(api, call).await
    }

    /// [`Self::on_api`] for an API already resolved by [`Self::call_api`].
    async fn on_resolved_api<T, F, Fut>(&self, api: ResolvedApi, call: F) -> Result<T, OtsError>
    where
        F: Fn(ResolvedApi) -> Fut,
        Fut: Future<Output = Result<T, OtsError>>,
    {
        let result = call(api).await;
        if self.falls_back(api, &result) {
            return call(ResolvedApi::V1).await;
        }
        result
    }

    /// After a v2 call: whether it was refused as an anonymous guest call and should be made on
    /// v1 instead (remembered for the server). A refused call stored nothing, so repeating it on
    /// v1 cannot share twice.
    fn falls_back<T>(&self, api: ResolvedApi, result: &Result<T, OtsError>) -> bool {
        let refused = matches!(result, Err(OtsError::GuestRoutesDisabled));
        if api == ResolvedApi::V2 && refused && self.may_fall_back() {
            if !self
                .inner
                .learned
                .inner
                .guest_v2_off
                .swap(true, Ordering::Relaxed)
            {
                tracing::info!(
                    server = %self.inner.http.base_url,
                    "the server refuses anonymous v2 calls (guest routes disabled); using v1 for anonymous calls"
                );
            }
            return true;
        }
        false
    }

    /// Removes the secret values sent with a request (and the API token) from an error.
    fn scrub<T>(
        &self,
        result: Result<T, OtsError>,
        sent: &[Option<&SecretString>],
    ) -> Result<T, OtsError> {
        result.map_err(|err| {
            let token = self.inner.http.credentials.as_ref().map(|c| &c.api_token);
            let values: Vec<&str> = sent
                .iter()
                .copied()
                .chain(std::iter::once(token))
                .flatten()
                .map(|s| s.expose_secret())
                .collect();
            err.scrub(&values)
        })
    }

    /// The server's health (`GET /api/vN/status`). Credentials, when set, are checked too.
    pub async fn status(&self) -> Result<ServerStatus, OtsError> {
        let result = match self.api_version().await {
            Ok(ResolvedApi::V1) => v1::status(&self.inner.http).await,
            Ok(ResolvedApi::V2) => v2::status(&self.inner.http).await,
            Err(e) => Err(e),
        };
        self.scrub(result, &[])
    }

    /// Checks the credentials once, without sharing anything: v1 `GET /authcheck`, v2
    /// `GET /authcheck` on servers that have it (v0.18–v0.23) else `GET /version` (all refuse bad
    /// credentials; v2 `/status` does not look at them).
    /// Anonymous clients have nothing to check. A server without such a route cannot be asked:
    /// that counts as verified (a share will tell).
    pub async fn verify_credentials(&self) -> Result<(), OtsError> {
        if self.inner.http.credentials.is_none() {
            return Ok(());
        }
        let result = match self.api_version().await {
            Ok(ResolvedApi::V1) => v1::verify(&self.inner.http).await,
            Ok(ResolvedApi::V2) => {
                v2::verify(&self.inner.http, &self.inner.learned.inner.verify_route).await
            }
            Err(e) => Err(e),
        };
        match self.scrub(result, &[]) {
            Err(OtsError::RouteNotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Shares a value and returns its receipt. Input is checked before any request.
    pub async fn share(&self, req: &ShareRequest) -> Result<Receipt, OtsError> {
        validate::secret_within(&req.secret, self.inner.max_secret_bytes)?;
        let ttl = validate::options(req.passphrase.as_ref(), req.ttl)?;
        let http = &self.inner.http;
        let result = self
            .on_api(|api| async move {
                match api {
                    // v1 has no share domain: a link on another domain than asked is never made.
                    ResolvedApi::V1 if req.share_domain.is_some() => {
                        Err(OtsError::ShareDomainUnsupported)
                    }
                    ResolvedApi::V1 => v1::share(http, req, ttl).await,
                    ResolvedApi::V2 => v2::share(http, req, ttl).await,
                }
            })
            .await;
        self.scrub(result, &[Some(&req.secret), req.passphrase.as_ref()])
    }

    /// Has the server generate a value, share it, and return the receipt and the value.
    pub async fn generate(
        &self,
        req: &GenerateRequest,
    ) -> Result<(Receipt, SecretString), OtsError> {
        let ttl = validate::options(req.passphrase.as_ref(), req.ttl)?;
        let http = &self.inner.http;
        let result = self
            .on_api(|api| async move {
                match api {
                    ResolvedApi::V1 if req.share_domain.is_some() => {
                        Err(OtsError::ShareDomainUnsupported)
                    }
                    ResolvedApi::V1 => v1::generate(http, req, ttl).await,
                    ResolvedApi::V2 => v2::generate(http, req, ttl).await,
                }
            })
            .await;
        self.scrub(result, &[req.passphrase.as_ref()])
    }

    /// Reveals (and so destroys) a secret. A wrong or missing passphrase is `NotFound` and does
    /// not consume the secret.
    pub async fn reveal(
        &self,
        secret_key: &str,
        passphrase: Option<&SecretString>,
    ) -> Result<SecretString, OtsError> {
        validate::key(secret_key)?;
        let http = &self.inner.http;
        let result = self
            .on_api(|api| async move {
                match api {
                    ResolvedApi::V1 => v1::reveal(http, secret_key, passphrase).await,
                    ResolvedApi::V2 => v2::reveal(http, secret_key, passphrase).await,
                }
            })
            .await;
        self.scrub(result, &[passphrase])
    }

    /// The receipt of a shared secret: its state and lifetimes. `NotFound` only when the server
    /// says the receipt does not exist (it lives about twice the secret's lifetime); an unknown
    /// route is `RouteNotFound`.
    pub async fn receipt(&self, metadata_key: &str) -> Result<Receipt, OtsError> {
        validate::key(metadata_key)?;
        let result = self.receipt_unchecked(metadata_key).await;
        self.scrub(result, &[])
    }

    async fn receipt_unchecked(&self, metadata_key: &str) -> Result<Receipt, OtsError> {
        let http = &self.inner.http;
        let layout = &self.inner.learned.inner.layout;
        self.on_api(|api| async move {
            match api {
                ResolvedApi::V1 => v1::receipt(http, metadata_key).await,
                ResolvedApi::V2 => v2::receipt(http, layout, metadata_key).await,
            }
        })
        .await
    }

    /// Which of `secret_keys` (the links' last parts) are still unread, in one call that reads
    /// nothing: v2 `POST /secret/status`. One [`Unread`] per key, in order; a key reported
    /// [`Unread::Left`] was revealed, burned or expired, and only its receipt tells which.
    ///
    /// A v1 server, or a v2 server without the route (before v0.24), answers
    /// [`OtsError::RouteNotFound`]: track those links one receipt at a time.
    pub async fn unread_among(&self, secret_keys: &[&str]) -> Result<Vec<Unread>, OtsError> {
        for key in secret_keys {
            validate::key(key)?;
        }
        if secret_keys.is_empty() {
            return Ok(Vec::new());
        }
        let http = &self.inner.http;
        let result = match self.call_api().await {
            Ok(ResolvedApi::V1) => Err(OtsError::RouteNotFound {
                path: "/api/v1/secret/status (v1 has no batch status)".into(),
            }),
            Ok(ResolvedApi::V2) => v2::unread_among(http, secret_keys).await,
            Err(e) => Err(e),
        };
        self.scrub(result, &[])
    }

    /// Burns an unread secret. A passphrase-protected secret needs its passphrase, even for its
    /// owner.
    ///
    /// When the server does not burn it (v2 `200 {"success":true}` without a record for a
    /// consumed secret, `success:false` when a reveal won, v1 `Unknown secret`, v0.21–v0.23's
    /// `500 "Secret could not be burned."`), the receipt is read once: a final state is
    /// [`BurnOutcome::AlreadyGone`] with that state; a receipt that still shows the secret live
    /// is [`OtsError::BurnUnconfirmed`] (transient: try again), never "gone".
    pub async fn burn(
        &self,
        metadata_key: &str,
        passphrase: Option<&SecretString>,
    ) -> Result<BurnOutcome, OtsError> {
        validate::key(metadata_key)?;
        let http = &self.inner.http;
        let layout = &self.inner.learned.inner.layout;
        let result = async {
            // A failure to resolve the API is returned as it is, never taken for "not burned".
            let api = self.call_api().await?;
            let answer = self
                .on_resolved_api(api, |api| async move {
                    match api {
                        ResolvedApi::V1 => v1::burn(http, metadata_key, passphrase).await,
                        ResolvedApi::V2 => v2::burn(http, layout, metadata_key, passphrase).await,
                    }
                })
                .await;
            match answer {
                Ok(BurnAnswer::Burned(receipt)) => Ok(BurnOutcome::Burned(receipt)),
                Ok(BurnAnswer::NotBurned)
                | Err(OtsError::NotFound)
                | Err(OtsError::Refused { .. }) => self.confirm_gone(metadata_key).await,
                Err(e) => Err(e),
            }
        }
        .await;
        self.scrub(result, &[passphrase])
    }

    /// After a burn that burned nothing: the receipt's word on whether the secret is gone.
    async fn confirm_gone(&self, metadata_key: &str) -> Result<BurnOutcome, OtsError> {
        match self.receipt_unchecked(metadata_key).await {
            Ok(receipt) if receipt.state.is_final() => Ok(BurnOutcome::AlreadyGone {
                state: receipt.state,
                received: receipt.received,
            }),
            Ok(receipt) => Err(OtsError::BurnUnconfirmed {
                state: receipt.state,
            }),
            // The receipt outlives the secret: without it, the secret is long gone.
            Err(OtsError::NotFound) => Ok(BurnOutcome::AlreadyGone {
                state: SecretState::Expired,
                received: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// The account's recent receipts (needs credentials).
    pub async fn recent(&self) -> Result<Vec<Receipt>, OtsError> {
        let result = match self.call_api().await {
            Ok(ResolvedApi::V1) => v1::recent(&self.inner.http).await,
            Ok(ResolvedApi::V2) => v2::recent(&self.inner.http).await,
            Err(e) => Err(e),
        };
        self.scrub(result, &[])
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
