//! The HTTP client notifications go out through (design §4): only to allowed origins, only to
//! addresses the [`AddressPolicy`] lets through (the resolver checks every DNS answer and the
//! client connects to the checked addresses only, so a rebinding answer cannot slip in), no
//! redirects, no proxy. Errors name the rule and the host, never the path or query of the URL:
//! a Slack or Teams URL's path is a bearer token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::CONTENT_TYPE;
use url::{Host, Url};

use super::address::{AddressPolicy, AddressRule};
use super::allowlist::Allowlist;

/// Upper bound for establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one attempt, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `User-Agent` of every notification.
const USER_AGENT: &str = concat!("ots-operator-notifications/", env!("CARGO_PKG_VERSION"));

/// Why a notification was not delivered. Names the host and the rule; never the URL's path or
/// query, nor anything the endpoint answered besides its status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL has no host or port, or is not http(s).
    #[error("the notification URL is malformed")]
    Malformed,
    /// The URL's origin is not on the allowlist.
    #[error("{host} is not on the notification URL allowlist")]
    NotAllowed {
        /// The URL's host.
        host: String,
    },
    /// The host is, or resolves to, an address a rule refuses (no request was sent).
    #[error("{host} resolves to {address}, a {rule}")]
    AddressRefused {
        /// The URL's host.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// The rule that refuses it.
        rule: AddressRule,
    },
    /// The host did not resolve.
    #[error("{host} does not resolve")]
    NotResolved {
        /// The URL's host.
        host: String,
    },
    /// The endpoint answered with a redirect, which is not followed.
    #[error("the endpoint {host} answered with a redirect ({status})")]
    Redirect {
        /// The URL's host.
        host: String,
        /// The 3xx status code.
        status: u16,
    },
    /// The endpoint answered with an error status.
    #[error("the endpoint {host} answered {status}")]
    Status {
        /// The URL's host.
        host: String,
        /// The status code.
        status: u16,
        /// How long the endpoint asked to wait (`Retry-After` in seconds), if it said.
        retry_after: Option<Duration>,
    },
    /// No answer: connection, TLS or timeout.
    #[error("cannot reach {host}: {cause}")]
    Unreachable {
        /// The URL's host.
        host: String,
        /// The transport's error chain, without the URL.
        cause: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the notification HTTP client: {0}")]
    Setup(String),
}

impl EndpointError {
    /// Whether the endpoint itself is refused (the allowlist or an address rule), rather than
    /// unavailable: counted as `refused`, not retried.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EndpointError::Malformed
                | EndpointError::NotAllowed { .. }
                | EndpointError::AddressRefused { .. }
                | EndpointError::Redirect { .. }
        )
    }
}

/// Where host names are looked up.
#[derive(Debug, Clone)]
enum Lookup {
    /// The system resolver.
    System,
    /// Fixed answers, for tests that need a name to resolve to a given address.
    #[cfg(test)]
    Fixed(Vec<(String, Vec<IpAddr>)>),
}

impl Lookup {
    async fn addresses(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        match self {
            Lookup::System => Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|addr| addr.ip())
                .collect()),
            #[cfg(test)]
            Lookup::Fixed(answers) => Ok(answers
                .iter()
                .find(|(name, _)| name == host)
                .map(|(_, addrs)| addrs.clone())
                .unwrap_or_default()),
        }
    }
}

/// A reqwest resolver that hands the connector only addresses the policy lets through, and
/// nothing at all if any answer is refused.
#[derive(Debug, Clone)]
struct CheckedResolver {
    policy: Arc<AddressPolicy>,
    lookup: Lookup,
}

impl CheckedResolver {
    async fn resolve_checked(&self, host: String) -> Result<Vec<IpAddr>, EndpointError> {
        let addresses = self
            .lookup
            .addresses(&host)
            .await
            .map_err(|_| EndpointError::NotResolved { host: host.clone() })?;
        if addresses.is_empty() {
            return Err(EndpointError::NotResolved { host });
        }
        for &address in &addresses {
            check_address(&self.policy, &host, address)?;
        }
        Ok(addresses)
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolver.resolve_checked(host).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(addrs)
        })
    }
}

fn check_address(policy: &AddressPolicy, host: &str, address: IpAddr) -> Result<(), EndpointError> {
    policy
        .check(address)
        .map_err(|rule| EndpointError::AddressRefused {
            host: host.to_owned(),
            address,
            rule,
        })
}

/// The client notifications are sent with.
#[derive(Debug, Clone)]
pub struct NotificationClient {
    allowlist: Allowlist,
    policy: Arc<AddressPolicy>,
    http: reqwest::Client,
}

impl NotificationClient {
    /// A client for the `allowlist`'s origins on the addresses `policy` lets through, with `tls`
    /// (the operator's rustls configuration, as for the OTS server).
    pub fn new(
        allowlist: Allowlist,
        policy: AddressPolicy,
        tls: rustls::ClientConfig,
    ) -> Result<NotificationClient, EndpointError> {
        Self::with_lookup(allowlist, policy, tls, Lookup::System)
    }

    fn with_lookup(
        allowlist: Allowlist,
        policy: AddressPolicy,
        tls: rustls::ClientConfig,
        lookup: Lookup,
    ) -> Result<NotificationClient, EndpointError> {
        let policy = Arc::new(policy);
        let resolver = CheckedResolver {
            policy: policy.clone(),
            lookup,
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|err| EndpointError::Setup(error_chain(&err.without_url())))?;
        Ok(NotificationClient {
            allowlist,
            policy,
            http,
        })
    }

    /// Whether `url` may be sent to before any lookup: its origin is allowed, and an IP-literal
    /// host (which the connector uses without asking the resolver) passes the address policy.
    pub fn check(&self, url: &Url) -> Result<(), EndpointError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(EndpointError::Malformed);
        }
        self.allowlist.check(url)?;
        let host = url.host_str().unwrap_or_default();
        match url.host() {
            Some(Host::Ipv4(ip)) => check_address(&self.policy, host, IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => check_address(&self.policy, host, IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
            None => Err(EndpointError::Malformed),
        }
    }

    /// POSTs `body` to `url` with `headers`; the status of a 2xx answer. The answer's body is
    /// not read. A refused URL sends nothing.
    pub async fn post(
        &self,
        url: &Url,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<u16, EndpointError> {
        self.check(url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut request = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(&host, err))?;
        let status = response.status();
        if status.is_redirection() {
            Err(EndpointError::Redirect {
                host,
                status: status.as_u16(),
            })
        } else if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(EndpointError::Status {
                host,
                status: status.as_u16(),
                retry_after: crate::ots::http::retry_after(response.headers()),
            })
        }
    }
}

/// A transport error as an [`EndpointError`]: the resolver's refusal if that is the cause,
/// otherwise the error chain without the URL.
fn transport_error(host: &str, err: reqwest::Error) -> EndpointError {
    let err = err.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = source {
        if let Some(refusal) = current.downcast_ref::<EndpointError>() {
            return refusal.clone();
        }
        source = current.source();
    }
    EndpointError::Unreachable {
        host: host.to_owned(),
        cause: error_chain(&err),
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PATH: &str = "/services/T000/B000/SECRETTOKEN?k=QUERYTOKEN";

    /// A TLS configuration trusting nothing: these tests speak plain http.
    fn tls() -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    /// A listener that never answers; counts the connections made to it.
    struct Target {
        listener: TcpListener,
    }

    impl Target {
        fn new() -> Target {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            Target { listener }
        }

        fn port(&self) -> u16 {
            self.listener.local_addr().unwrap().port()
        }

        /// Connections made so far (each accepted and dropped).
        fn connections(&self) -> usize {
            std::iter::from_fn(|| self.listener.accept().ok()).count()
        }
    }

    fn client(
        allowed: &[String],
        cidrs: &[&str],
        answers: &[(&str, &[&str])],
    ) -> NotificationClient {
        let policy = AddressPolicy::new(cidrs.iter().map(|c| c.parse().unwrap()).collect(), vec![]);
        let answers = answers
            .iter()
            .map(|(name, addrs)| {
                let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
                (name.to_string(), addrs)
            })
            .collect();
        NotificationClient::with_lookup(
            Allowlist::parse(allowed).unwrap(),
            policy,
            tls(),
            Lookup::Fixed(answers),
        )
        .unwrap()
    }

    async fn post(client: &NotificationClient, url: &str) -> Result<u16, EndpointError> {
        let url = Url::parse(url).unwrap();
        client
            .post(
                &url,
                "application/json",
                &[("webhook-id", "ots_X")],
                b"{}".to_vec(),
            )
            .await
    }

    fn assert_no_secret(err: &EndpointError) {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(
                !text.contains("SECRETTOKEN") && !text.contains("QUERYTOKEN"),
                "{text}"
            );
        }
    }

    /// Serves one connection with `response` after reading the request.
    async fn serve_once(response: String) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The request is small: its head and the 2-byte body.
            while !request.ends_with(b"\r\n\r\n{}") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn refuses_a_loopback_target_however_it_is_named_and_sends_nothing() {
        let target = Target::new();
        let port = target.port();
        let allowed = [
            format!("http://127.0.0.1:{port}"),
            format!("http://[::ffff:127.0.0.1]:{port}"),
            format!("http://hooks.test:{port}"),
            format!("http://mixed.test:{port}"),
            format!("http://localhost:{port}"),
        ];
        let client = client(
            &allowed,
            &[],
            &[
                ("hooks.test", &["127.0.0.1"]),
                // One good answer does not make a refused one acceptable.
                ("mixed.test", &["93.184.215.14", "127.0.0.1"]),
            ],
        );
        for url in [
            format!("http://127.0.0.1:{port}{PATH}"),
            format!("http://[::ffff:127.0.0.1]:{port}{PATH}"),
            format!("http://hooks.test:{port}{PATH}"),
            format!("http://mixed.test:{port}{PATH}"),
        ] {
            let err = post(&client, &url).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    EndpointError::AddressRefused {
                        rule: AddressRule::Loopback,
                        ..
                    }
                ),
                "{url}: {err:?}"
            );
            assert!(err.is_refusal());
            assert_no_secret(&err);
        }
        // `localhost` goes through the system resolver in real use; here the fixed lookup has
        // no answer for it, so it does not resolve, and nothing is sent either.
        let err = post(&client, &format!("http://localhost:{port}{PATH}"))
            .await
            .unwrap_err();
        assert!(matches!(err, EndpointError::NotResolved { .. }), "{err:?}");
        assert_eq!(target.connections(), 0);
    }

    #[tokio::test]
    async fn the_system_resolver_refuses_localhost() {
        let target = Target::new();
        let port = target.port();
        let client = NotificationClient::new(
            Allowlist::parse(&[format!("http://localhost:{port}")]).unwrap(),
            AddressPolicy::default(),
            tls(),
        )
        .unwrap();
        let err = post(&client, &format!("http://localhost:{port}{PATH}"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EndpointError::AddressRefused {
                    rule: AddressRule::Loopback,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("localhost resolves to ") && text.ends_with(", a loopback address"),
            "{text}"
        );
        assert_eq!(target.connections(), 0);
    }

    #[tokio::test]
    async fn refuses_the_cloud_metadata_address_by_name() {
        let client = client(
            &["http://metadata.test".to_owned()],
            &[],
            &[("metadata.test", &["169.254.169.254"])],
        );
        let err = post(&client, &format!("http://metadata.test{PATH}"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                EndpointError::AddressRefused {
                    rule: AddressRule::LinkLocal,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = post(&client, &format!("http://169.254.169.254{PATH}"))
            .await
            .unwrap_err();
        assert!(matches!(err, EndpointError::NotAllowed { .. }), "{err:?}");
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn refuses_a_host_off_the_allowlist_before_any_lookup() {
        let target = Target::new();
        let port = target.port();
        let client = client(&[], &["127.0.0.0/8"], &[("hooks.test", &["127.0.0.1"])]);
        let err = post(&client, &format!("http://hooks.test:{port}{PATH}"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            EndpointError::NotAllowed {
                host: "hooks.test".into()
            }
        );
        assert_no_secret(&err);
        assert_eq!(target.connections(), 0);
    }

    #[tokio::test]
    async fn delivers_to_an_allowed_endpoint_on_an_allowed_cidr() {
        // The control for the refusals: the same client reaches a listener it may reach.
        let port = serve_once("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".into()).await;
        let client = client(
            &[format!("http://hooks.test:{port}")],
            &["127.0.0.0/8"],
            &[("hooks.test", &["127.0.0.1"])],
        );
        assert_eq!(
            post(&client, &format!("http://hooks.test:{port}/in")).await,
            Ok(204)
        );
    }

    #[tokio::test]
    async fn a_redirect_is_refused_and_not_followed() {
        let target = Target::new();
        let location = format!("http://127.0.0.1:{}/next", target.port());
        let port = serve_once(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let client = client(
            &[
                format!("http://hooks.test:{port}"),
                format!("http://127.0.0.1:{}", target.port()),
            ],
            &["127.0.0.0/8"],
            &[("hooks.test", &["127.0.0.1"])],
        );
        let err = post(&client, &format!("http://hooks.test:{port}{PATH}"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            EndpointError::Redirect {
                host: "hooks.test".into(),
                status: 307
            }
        );
        assert_eq!(
            err.to_string(),
            "the endpoint hooks.test answered with a redirect (307)"
        );
        assert!(err.is_refusal());
        assert_eq!(target.connections(), 0);
    }

    #[tokio::test]
    async fn an_error_status_names_the_code_not_the_body() {
        let port = serve_once(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBODYSECRETS".into(),
        )
        .await;
        let client = client(
            &[format!("http://hooks.test:{port}")],
            &["127.0.0.0/8"],
            &[("hooks.test", &["127.0.0.1"])],
        );
        let err = post(&client, &format!("http://hooks.test:{port}{PATH}"))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the endpoint hooks.test answered 500");
        assert!(!err.is_refusal());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_names_the_host_not_the_path() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = client(
            &[format!("http://hooks.test:{port}")],
            &["127.0.0.0/8"],
            &[("hooks.test", &["127.0.0.1"])],
        );
        let err = post(&client, &format!("http://hooks.test:{port}{PATH}"))
            .await
            .unwrap_err();
        assert!(matches!(err, EndpointError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("cannot reach hooks.test: "),
            "{err}"
        );
        assert_no_secret(&err);
    }
}
