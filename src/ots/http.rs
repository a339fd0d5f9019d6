//! The HTTP layer: the pooled reqwest client, request building and reading of replies.
//!
//! Nothing here knows an API version's semantics; it turns transport failures into
//! [`OtsError::Unavailable`] and hands status, the headers that matter and the body upward.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use url::Url;

use super::config::Credentials;
use super::error::{InputError, OtsError};
use super::types::ResolvedApi;
use super::validate::key_prefix;

/// Largest response body read; anything bigger is not an OTS answer.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound for establishing a connection (the request timeout bounds it too).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per server for reuse. As many as the operator's default bound on OTS
/// calls in flight (`--ots-max-in-flight 8`), so its steady state never opens a connection
/// twice; what a larger burst opened beyond that is closed when it goes idle instead of being
/// kept, with its TLS state and buffers, for the idle timeout (reqwest keeps every one).
pub const MAX_IDLE_PER_HOST: usize = 8;
/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("ots-operator/", env!("CARGO_PKG_VERSION"));
/// What a transport error says when no connection could be made (so nothing was sent).
pub(crate) const CONNECT_FAILED: &str = "cannot connect";
/// Header with which v1 (v0.24.6+) says what status it meant when it answered 404.
const INTENDED_STATUS: &str = "x-ots-intended-status";

/// Builds the pooled HTTP client: rustls with the ring provider and the platform's trust store,
/// HTTP/1.1 and HTTP/2 with connection reuse, connect and request timeouts, no redirects.
///
/// Redirects are refused because a redirect could lead credentials or secrets to a host the
/// operator's allowlist never approved (and a POST turned into a GET loses its body anyway).
pub fn build_client(timeout: Duration) -> Result<reqwest::Client, OtsError> {
    build_client_with_roots(timeout, Vec::new())
}

/// [`build_client`] that also trusts `extra_roots` (a private CA's certificates), besides the
/// platform's trust store.
pub fn build_client_with_roots(
    timeout: Duration,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<reqwest::Client, OtsError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(extra_roots)?)
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .tcp_keepalive(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| setup_error(&err.without_url()))
}

/// A rustls configuration on the ring provider (kube uses ring too, so no aws-lc is linked).
pub(crate) fn tls_config(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, OtsError> {
    let setup = |err: rustls::Error| setup_error(&err);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The platform's verifier (the OS trust store, or SSL_CERT_FILE/SSL_CERT_DIR) plus the
    // operator's own CA certificates, if any.
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(setup)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // A preconfigured backend gets no ALPN from reqwest; offer what the client speaks.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks and normalizes a base URL: absolute http(s), no credentials, no query or fragment.
pub fn normalize_base_url(mut url: Url) -> Result<Url, InputError> {
    if !matches!(url.scheme(), "http" | "https")
        || url.cannot_be_a_base()
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(InputError::InvalidBaseUrl);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed).
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// One operation, for logs and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Probe,
    Status,
    Share,
    Generate,
    Reveal,
    Receipt,
    Burn,
    Recent,
    Verify,
    /// v2 `POST /secret/status`: which of many secrets are still unread.
    BatchStatus,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Status => "status",
            Self::Share => "share",
            Self::Generate => "generate",
            Self::Reveal => "reveal",
            Self::Receipt => "receipt",
            Self::Burn => "burn",
            Self::Recent => "recent",
            Self::Verify => "verify",
            Self::BatchStatus => "batch_status",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server's answer, read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after: Option<Duration>,
    /// v1's `X-OTS-Intended-Status`, when present.
    pub intended_status: Option<u16>,
    pub body: Vec<u8>,
    /// The request's URL path with its key shortened to a prefix (for errors about the route).
    pub path: String,
    /// Length of the key the request was about, when it named one.
    pub key_chars: Option<usize>,
}

#[cfg(test)]
impl Reply {
    /// An answer as a server would send it, about a key of 62 characters at `path`.
    pub fn for_test(status: u16, intended_status: Option<u16>, body: &str, path: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("a valid HTTP status"),
            retry_after: None,
            intended_status,
            body: body.as_bytes().to_vec(),
            path: path.into(),
            key_chars: Some(62),
        }
    }
}

/// What every request to one server shares.
pub struct Http {
    pub client: reqwest::Client,
    pub base_url: Url,
    pub credentials: Option<Credentials>,
    pub timeout: Duration,
}

impl Http {
    /// A request to `BASE/api/vN/<segments>` with auth, timeout and `Accept: application/json`.
    pub fn request(&self, method: Method, api: ResolvedApi, segments: &[&str]) -> RequestBuilder {
        let mut path = vec!["api", api.as_str()];
        path.extend_from_slice(segments);
        let mut builder = self
            .client
            .request(method, join(&self.base_url, &path))
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        if let Some(credentials) = &self.credentials {
            builder = builder.basic_auth(
                &credentials.username,
                Some(credentials.api_token.expose_secret()),
            );
        }
        builder
    }

    /// Sends a request and reads its answer with the API's `check` (the JSON of a success, or the
    /// error the answer stands for).
    pub async fn call(
        &self,
        op: Op,
        api: ResolvedApi,
        key: Option<&str>,
        request: RequestBuilder,
        check: fn(Op, &Reply) -> Result<serde_json::Value, OtsError>,
    ) -> Result<serde_json::Value, OtsError> {
        let reply = self.send(op, api, key, request).await?;
        check(op, &reply)
    }

    /// Sends a request and reads the whole reply; logs operation, status and latency at debug.
    ///
    /// `key` is only logged as a short prefix.
    pub async fn send(
        &self,
        op: Op,
        api: ResolvedApi,
        key: Option<&str>,
        request: RequestBuilder,
    ) -> Result<Reply, OtsError> {
        let started = Instant::now();
        let key_chars = key.map(|k| k.chars().count());
        let (client, built) = request.build_split();
        let path = built
            .as_ref()
            .map(|r| redacted_path(r.url(), key))
            .unwrap_or_default();
        let key = key.map(key_prefix).unwrap_or("");
        let result = match built {
            Ok(built) => read(op, client, built).await.map(|mut reply| {
                reply.path = path;
                reply.key_chars = key_chars;
                reply
            }),
            Err(err) => Err(transport_error(op, err)),
        }
        .map_err(|err| match err {
            // The transport does not know the server; name it.
            OtsError::TlsUntrusted { detail, .. } => OtsError::TlsUntrusted {
                server: self.base_url.origin().ascii_serialization(),
                detail,
            },
            other => other,
        });
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(reply) => tracing::debug!(
                op = op.as_str(),
                api = api.as_str(),
                key,
                status = reply.status.as_u16(),
                elapsed_ms,
                "OTS request"
            ),
            Err(err) => tracing::debug!(
                op = op.as_str(),
                api = api.as_str(),
                key,
                elapsed_ms,
                error = %err,
                "OTS request failed"
            ),
        }
        result
    }
}

async fn read(
    op: Op,
    client: reqwest::Client,
    request: reqwest::Request,
) -> Result<Reply, OtsError> {
    let mut response = client
        .execute(request)
        .await
        .map_err(|err| transport_error(op, err))?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let intended_status = response
        .headers()
        .get(INTENDED_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large(op));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| transport_error(op, err))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large(op));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        retry_after,
        intended_status,
        body,
        path: String::new(),
        key_chars: None,
    })
}

/// A URL's path with the key segment shortened to its prefix: errors may name the route, never
/// the key (a bearer capability).
pub fn redacted_path(url: &Url, key: Option<&str>) -> String {
    let Some(segments) = url.path_segments() else {
        return url.path().to_owned();
    };
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        match key {
            Some(key) if !key.is_empty() && segment == key => {
                out.push_str(key_prefix(key));
                out.push('…');
            }
            _ => out.push_str(segment),
        }
    }
    out
}

fn too_large(op: Op) -> OtsError {
    OtsError::Protocol {
        detail: format!("{op}: response body larger than {MAX_BODY_BYTES} bytes"),
    }
}

/// `Retry-After` as delay-seconds (the HTTP-date form is not used by OTS and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// What rustls said when an error's chain holds its "invalid certificate" (unknown issuer, bad
/// signature, expired, wrong name, ...). The rustls error sits behind boxed connector errors
/// that cannot all be downcast, so its stable Display prefix is what is matched.
fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    const PREFIX: &str = "invalid peer certificate: ";
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if let Some(at) = text.find(PREFIX) {
            return Some(text[at + PREFIX.len()..].to_owned());
        }
        source = cause.source();
    }
    None
}

/// A transport failure as [`OtsError::Unavailable`], without the URL (it holds keys).
fn transport_error(op: Op, err: reqwest::Error) -> OtsError {
    let err = err.without_url();
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        CONNECT_FAILED
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else if err.is_builder() {
        "cannot build the request"
    } else {
        "request failed"
    };
    if let Some(problem) = untrusted_certificate(&err) {
        // A configuration problem (a private CA), not an outage; `send` names the server.
        return OtsError::TlsUntrusted {
            server: String::new(),
            detail: problem,
        };
    }
    OtsError::Unavailable {
        detail: format!("{op}: {what} ({})", error_chain(&err)),
    }
}

/// The HTTP client could not be built.
fn setup_error(err: &(dyn std::error::Error + 'static)) -> OtsError {
    OtsError::Setup {
        detail: error_chain(err),
    }
}

/// The error and its sources joined by ": ", for errors that carry no secrets or URLs.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_absolute_http_without_credentials() {
        for ok in [
            "https://eu.onetimesecret.com",
            "http://127.0.0.1:8080",
            "https://host/ots/",
        ] {
            assert!(normalize_base_url(Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://host",
            "mailto:a@b.c",
            "https://user:pw@host",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                normalize_base_url(Url::parse(bad).unwrap()),
                Err(InputError::InvalidBaseUrl),
                "{bad}"
            );
        }
        let url = normalize_base_url(Url::parse("https://host/x?a=1#f").unwrap()).unwrap();
        assert_eq!(url.as_str(), "https://host/x");
    }

    #[test]
    fn paths_are_appended_below_the_base_path() {
        let root = Url::parse("https://eu.onetimesecret.com").unwrap();
        assert_eq!(
            join(&root, &["api", "v1", "share"]).as_str(),
            "https://eu.onetimesecret.com/api/v1/share"
        );
        let sub = Url::parse("https://host/ots/").unwrap();
        assert_eq!(
            join(&sub, &["secret", "abc"]).as_str(),
            "https://host/ots/secret/abc"
        );
        let sub_no_slash = Url::parse("https://host/ots").unwrap();
        assert_eq!(
            join(&sub_no_slash, &["secret", "abc"]).as_str(),
            "https://host/ots/secret/abc"
        );
    }

    #[test]
    fn retry_after_reads_delay_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "17".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(17)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_redacted_path_shows_only_the_key_prefix() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789";
        let url = Url::parse(&format!("https://h/ots/api/v2/receipt/{key}/burn")).unwrap();
        assert_eq!(
            redacted_path(&url, Some(key)),
            "/ots/api/v2/receipt/abcdef…/burn"
        );
        let url = Url::parse("https://h/api/v1/share").unwrap();
        assert_eq!(redacted_path(&url, None), "/api/v1/share");
    }

    #[test]
    fn http_client_builds_with_the_ring_provider() {
        assert!(build_client(Duration::from_secs(5)).is_ok());
    }
}
