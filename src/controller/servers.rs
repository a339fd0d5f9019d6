//! Which Onetime Secret server a resource uses, with which credentials, and one client for it.
//!
//! The allowlist lives here: a user who may create a share must not be able to make the operator
//! send data to an arbitrary address. Clients share one HTTP connection pool, and what a server
//! offers (API version, receipt routes, anonymous v2 or not) is learned once per server, not once
//! per resource.
//!
//! Credentials are verified once per server and identity before they are used (v2
//! `GET /version`, v1 `GET /authcheck`), and again every [`REVERIFY_AFTER`]: bad ones make every
//! resource that uses them `Unauthorized` without a share attempt, with one Warning log line per
//! server and identity (and an Info line when they work again). Readiness does not depend on it:
//! other identities may still work.

use crate::config::{ControllerConfig, origin};
use crate::error::Error;
use crate::ots::{
    ApiVersion, ClientConfig, Credentials, ExposeSecret, Learned, OtsClient, OtsError, SecretString,
};
use crate::resource::ServerSpec;
use crate::runtime::throttle::{Throttle, Turn};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// How long a verdict on credentials holds before they are verified again (so fixed credentials
/// recover, and revoked ones are noticed).
pub const REVERIFY_AFTER: Duration = Duration::from_secs(300);

/// One identity on one server: base URL, username and a keyed hash of the token (never the
/// token).
type Identity = (String, String, u64);

/// A verdict on an identity's credentials.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    accepted: bool,
    at: Instant,
}

/// Key of the username in a credentials Secret.
pub const USERNAME_KEY: &str = "username";
/// Key of the API token in a credentials Secret.
pub const API_TOKEN_KEY: &str = "apiToken";

/// A resolved server: a client for it and its URL as recorded in status.
#[derive(Debug, Clone)]
pub struct Server {
    /// Client bound to the server, its API version and credentials.
    pub client: OtsClient,
    /// The server's base URL, as written to `status.serverUrl`.
    pub url: String,
    /// Credentials read from the resource's `credentialsSecretRef` (kept in the share's record,
    /// so a burn works after that Secret is gone); `None` for the operator's own or anonymous.
    pub per_share_credentials: Option<Credentials>,
    /// The CA certificates a server object gave besides the operator's roots (kept in the
    /// share's record, so a burn trusts the server after a restart or the object's deletion).
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// The custom domain new links are to be on (a server object's `shareDomain`).
    pub share_domain: Option<ShareDomain>,
}

/// A server object's `shareDomain`, with the object it comes from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareDomain {
    /// The domain, e.g. secrets.example.com.
    pub domain: String,
    /// The server object, kind and name (`OtsServer "eu"`).
    pub named: String,
}

/// Builds clients for the operator's servers.
pub struct Servers {
    http: reqwest::Client,
    /// One HTTP client per CA bundle of a server object (by a digest of its certificates),
    /// besides the operator's roots; a handful at most, so kept while the process runs.
    ca_clients: Mutex<HashMap<u64, reqwest::Client>>,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Per namespace and server (base URL): the client of the CA bundle a server object last
    /// gave it, so that the burn of a recorded link (which keeps no CA) trusts the server as its
    /// share did. Per namespace: a CA one tenant gives never decides whom another's calls trust.
    trust_by_url: Mutex<HashMap<(String, String), reqwest::Client>>,
    default_url: Url,
    default_credentials: Option<Credentials>,
    api: ApiVersion,
    timeout: std::time::Duration,
    allowed: Vec<String>,
    max_secret_bytes: usize,
    /// What was learned per server (base URL).
    learned: Mutex<HashMap<String, Learned>>,
    /// Per server (base URL): held while its API version is asked, so that concurrent
    /// reconciles wait for the one answer instead of each taking a turn of the OTS budget.
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Credential verdicts per identity; the inner lock makes concurrent reconciles of one
    /// identity wait for a single verification.
    verdicts: Mutex<HashMap<Identity, Arc<tokio::sync::Mutex<Option<Verdict>>>>>,
    token_hasher: RandomState,
    throttle: Throttle,
}

impl Servers {
    /// Servers as configured, sharing one connection pool.
    pub fn new(config: &ControllerConfig, throttle: Throttle) -> Result<Self, Error> {
        Ok(Servers {
            http: crate::ots::http_client_with_roots(
                config.ots_timeout,
                config.extra_roots.clone(),
            )?,
            default_url: config.ots_url.clone(),
            default_credentials: config.credentials.clone(),
            api: config.ots_api,
            timeout: config.ots_timeout,
            allowed: config.allowed_servers.clone(),
            max_secret_bytes: config.max_secret_bytes,
            ca_clients: Mutex::new(HashMap::new()),
            extra_roots: config.extra_roots.clone(),
            trust_by_url: Mutex::new(HashMap::new()),
            learned: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            token_hasher: RandomState::new(),
            throttle,
        })
    }

    /// The server a resource uses. What must be asked first (its API version, the credentials'
    /// check) waits for the OTS budget with `turn`, the resource's.
    ///
    /// `recorded_url` (from status) wins over the spec so that an existing link is always
    /// burned or tracked on the server that holds it.
    pub async fn resolve(
        &self,
        secrets: &Api<Secret>,
        spec: Option<&ServerSpec>,
        recorded_url: Option<&str>,
        turn: &Turn,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(recorded_url.or(spec.and_then(|s| s.url.as_deref())))?;
        let per_share = match spec.and_then(|s| s.credentials_secret_ref.as_ref()) {
            Some(reference) => Some(read_credentials(secrets, &reference.name).await?),
            None => None,
        };
        self.client_for(url, per_share, turn).await
    }

    /// The server a share's server object names (`recorded_url`, from status, wins as in
    /// [`Self::resolve`]); its credentials are kept in the share's record like inline ones.
    pub async fn resolve_object(
        &self,
        server: super::server_ref::ObjectServer,
        recorded_url: Option<&str>,
        namespace: &str,
        turn: &Turn,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(Some(recorded_url.unwrap_or(&server.url)))?;
        let http = match &server.ca {
            Some(roots) => self.trust(Some(namespace), url.as_str(), roots)?,
            None => self.http.clone(),
        };
        // A server object without credentials is anonymous, even at the operator's own server.
        let mut resolved = self
            .client_for_api(url, server.credentials, server.api, false, http, turn)
            .await?;
        resolved.ca = server.ca;
        resolved.share_domain = server.share_domain.map(|domain| ShareDomain {
            domain,
            named: server.named,
        });
        Ok(resolved)
    }

    /// The client of a server object's CA bundle, kept for the namespace (when it is one
    /// namespace's) and URL, see `trust_by_url`.
    pub fn trust(
        &self,
        namespace: Option<&str>,
        url: &str,
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<reqwest::Client, Error> {
        let client = self.http_trusting(roots)?;
        if let Some(namespace) = namespace {
            self.trust_by_url
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    (namespace.to_owned(), url.trim_end_matches('/').to_owned()),
                    client.clone(),
                );
        }
        Ok(client)
    }

    /// The client for a recorded link of a namespace: one that trusts the CA a server object
    /// gave that namespace's shares of this server, else the shared one.
    fn http_for(&self, namespace: &str, url: &str) -> reqwest::Client {
        self.trust_by_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_owned(), url.trim_end_matches('/').to_owned()))
            .cloned()
            .unwrap_or_else(|| self.http.clone())
    }

    /// [`Self::resolve_recorded`] for a link of `namespace`, trusting what its server object
    /// trusted: the CA its record keeps (`ca`), else the one a server object last gave the
    /// namespace for this URL (a record written before records kept it).
    pub async fn resolve_recorded_in(
        &self,
        namespace: &str,
        url: &str,
        per_share: Option<Credentials>,
        ca: Option<&[rustls::pki_types::CertificateDer<'static>]>,
        turn: &Turn,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(Some(url))?;
        let http = match ca {
            Some(roots) => self.trust(Some(namespace), url.as_str(), roots)?,
            None => self.http_for(namespace, url.as_str()),
        };
        self.client_for_api(url, per_share, self.api, true, http, turn)
            .await
    }

    /// An HTTP client that trusts a server object's CA bundle besides the operator's roots.
    pub fn http_trusting(
        &self,
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<reqwest::Client, Error> {
        let digest = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut hasher = DefaultHasher::new();
            for root in roots {
                root.as_ref().hash(&mut hasher);
            }
            hasher.finish()
        };
        let mut clients = self.ca_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&digest) {
            return Ok(client.clone());
        }
        let mut all = self.extra_roots.clone();
        all.extend(roots.iter().cloned());
        let client = crate::ots::http_client_with_roots(self.timeout, all)?;
        clients.insert(digest, client.clone());
        Ok(client)
    }

    /// The server of a recorded link, with the credentials recorded for it (no Secret is read).
    pub async fn resolve_recorded(
        &self,
        url: &str,
        per_share: Option<Credentials>,
        turn: &Turn,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(Some(url))?;
        self.client_for(url, per_share, turn).await
    }

    /// The default server with the operator's own credentials; `None` when it has none.
    pub async fn default_authenticated(&self, turn: &Turn) -> Result<Option<Server>, Error> {
        if self.default_credentials.is_none() {
            return Ok(None);
        }
        let url = self.default_url.clone();
        self.client_for(url, None, turn).await.map(Some)
    }

    /// The operator's configured server (`--ots-url`).
    pub fn default_url(&self) -> &str {
        self.default_url.as_str()
    }

    /// A server object's URL, if the allowlist has it (the check every URL passes before a call).
    pub fn allowed(&self, text: &str) -> Result<Url, Error> {
        self.allowed_url(Some(text))
    }

    /// The shared HTTP client (one connection pool, the operator's trusted roots).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The URL to use (`None`: the default server), if the allowlist has it.
    fn allowed_url(&self, text: Option<&str>) -> Result<Url, Error> {
        let url = match text {
            Some(text) => Url::parse(text).map_err(|_| Error::ServerNotAllowed {
                url: text.to_owned(),
            })?,
            None => self.default_url.clone(),
        };
        let server_origin = origin(&url);
        if !self.allowed.contains(&server_origin) {
            return Err(Error::ServerNotAllowed { url: server_origin });
        }
        Ok(url)
    }

    /// A client for an allowed server: per-share credentials, else the operator's own for its
    /// default server, else anonymous; the server's facts learned once, credentials verified.
    async fn client_for(
        &self,
        url: Url,
        per_share: Option<Credentials>,
        turn: &Turn,
    ) -> Result<Server, Error> {
        self.client_for_api(url, per_share, self.api, true, self.http.clone(), turn)
            .await
    }

    /// [`Self::client_for`] with the API version to speak, and whether the operator's own
    /// credentials stand in for missing ones at its default server.
    async fn client_for_api(
        &self,
        url: Url,
        per_share: Option<Credentials>,
        api: ApiVersion,
        own_at_default: bool,
        http: reqwest::Client,
        turn: &Turn,
    ) -> Result<Server, Error> {
        let server_origin = origin(&url);
        let credentials = match &per_share {
            Some(credentials) => Some(credentials.clone()),
            None if own_at_default && server_origin == origin(&self.default_url) => {
                self.default_credentials.clone()
            }
            None => None,
        };
        let mut config = ClientConfig::new(url.clone())
            .with_timeout(self.timeout)
            .with_max_secret_bytes(self.max_secret_bytes)
            .with_api(api);
        if let Some(credentials) = &credentials {
            config = config.with_credentials(credentials.clone());
        }
        // Facts are per server: the base URL, since two servers may share an origin.
        let server_key = url.as_str().trim_end_matches('/').to_owned();
        let learned = self
            .learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(server_key.clone())
            .or_default()
            .clone();
        let client = OtsClient::with_learned(config, http, learned)?;
        if api == ApiVersion::Auto && client.learned_api().is_none() {
            // Asked once per server (the answer is kept in `learned`), within the OTS budget;
            // reconciles that need it meanwhile wait for that answer, not for turns of their own.
            let probe = self
                .probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(server_key.clone())
                .or_default()
                .clone();
            let _asking = probe.lock().await;
            if client.learned_api().is_none() {
                self.throttle
                    .call(&server_key, "status", turn.clone(), client.api_version())
                    .await?;
            }
        }
        if let Some(credentials) = &credentials {
            self.verify(&server_key, credentials, &client, turn).await?;
        }
        Ok(Server {
            client,
            url: url.as_str().trim_end_matches('/').to_owned(),
            per_share_credentials: per_share,
            ca: None,
            share_domain: None,
        })
    }

    /// Verifies an identity's credentials once per [`REVERIFY_AFTER`]; bad ones are
    /// `Unauthorized` without asking the server again until then.
    async fn verify(
        &self,
        server: &str,
        credentials: &Credentials,
        client: &OtsClient,
        turn: &Turn,
    ) -> Result<(), Error> {
        let identity = (
            server.to_owned(),
            credentials.username.clone(),
            self.token_hasher
                .hash_one(credentials.api_token.expose_secret()),
        );
        let cell = self
            .verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(identity)
            .or_default()
            .clone();
        let mut verdict = cell.lock().await;
        if let Some(known) = *verdict
            && known.at.elapsed() < REVERIFY_AFTER
        {
            return if known.accepted {
                Ok(())
            } else {
                Err(OtsError::Unauthorized.into())
            };
        }
        let was_refused = verdict.is_some_and(|v| !v.accepted);
        match self
            .throttle
            .call(server, "verify", turn.clone(), client.verify_credentials())
            .await
        {
            Ok(()) => {
                if was_refused {
                    tracing::info!(
                        server,
                        username = %credentials.username,
                        "the server accepts the credentials again"
                    );
                }
                *verdict = Some(Verdict {
                    accepted: true,
                    at: Instant::now(),
                });
                Ok(())
            }
            Err(OtsError::Unauthorized) => {
                if !was_refused {
                    tracing::warn!(
                        server,
                        username = %credentials.username,
                        recheck_s = REVERIFY_AFTER.as_secs(),
                        "the server rejected the credentials: shares that use them are Unauthorized until they are fixed"
                    );
                }
                *verdict = Some(Verdict {
                    accepted: false,
                    at: Instant::now(),
                });
                Err(OtsError::Unauthorized.into())
            }
            // An outage or rate limit says nothing about the credentials: not kept.
            Err(other) => Err(other.into()),
        }
    }
}

async fn read_credentials(secrets: &Api<Secret>, name: &str) -> Result<Credentials, Error> {
    let missing = || Error::CredentialsNotFound {
        name: name.to_owned(),
    };
    let secret = secrets.get_opt(name).await?.ok_or_else(missing)?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| std::str::from_utf8(&v.0).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let username = text(USERNAME_KEY).ok_or_else(missing)?;
    let token = text(API_TOKEN_KEY).ok_or_else(missing)?;
    Ok(Credentials::new(username, SecretString::from(token)))
}
