//! Which Onetime Secret server a resource uses, with which credentials, and one client for it.
//!
//! The allowlist lives here: a user who may create a share must not be able to make the operator
//! send data to an arbitrary address. Clients share one HTTP connection pool, and the API version
//! a server offers is probed once per server, not once per resource.

use crate::config::{ControllerConfig, origin};
use crate::error::Error;
use crate::ots::{ApiVersion, ClientConfig, Credentials, OtsClient, ResolvedApi, SecretString};
use crate::resource::ServerSpec;
use crate::throttle::Throttle;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::collections::HashMap;
use std::sync::Mutex;
use url::Url;

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
}

/// Builds clients for the operator's servers.
pub struct Servers {
    http: reqwest::Client,
    default_url: Url,
    default_credentials: Option<Credentials>,
    api: ApiVersion,
    timeout: std::time::Duration,
    allowed: Vec<String>,
    probed: Mutex<HashMap<String, ResolvedApi>>,
    throttle: Throttle,
}

impl Servers {
    /// Servers as configured, sharing one connection pool.
    pub fn new(config: &ControllerConfig, throttle: Throttle) -> Result<Self, Error> {
        Ok(Servers {
            http: OtsClient::http_client(config.ots_timeout)?,
            default_url: config.ots_url.clone(),
            default_credentials: config.credentials.clone(),
            api: config.ots_api,
            timeout: config.ots_timeout,
            allowed: config.allowed_servers.clone(),
            probed: Mutex::new(HashMap::new()),
            throttle,
        })
    }

    /// The server a resource uses.
    ///
    /// `recorded_url` (from status) wins over the spec so that an existing link is always
    /// burned or tracked on the server that holds it.
    pub async fn resolve(
        &self,
        secrets: &Api<Secret>,
        spec: Option<&ServerSpec>,
        recorded_url: Option<&str>,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(recorded_url.or(spec.and_then(|s| s.url.as_deref())))?;
        let per_share = match spec.and_then(|s| s.credentials_secret_ref.as_ref()) {
            Some(reference) => Some(read_credentials(secrets, &reference.name).await?),
            None => None,
        };
        self.client_for(url, per_share).await
    }

    /// The server of a recorded link, with the credentials recorded for it (no Secret is read).
    pub async fn resolve_recorded(
        &self,
        url: &str,
        per_share: Option<Credentials>,
    ) -> Result<Server, Error> {
        let url = self.allowed_url(Some(url))?;
        self.client_for(url, per_share).await
    }

    /// The default server with the operator's own credentials; `None` when it has none.
    pub async fn default_authenticated(&self) -> Result<Option<Server>, Error> {
        if self.default_credentials.is_none() {
            return Ok(None);
        }
        let url = self.default_url.clone();
        self.client_for(url, None).await.map(Some)
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
    /// default server, else anonymous.
    async fn client_for(&self, url: Url, per_share: Option<Credentials>) -> Result<Server, Error> {
        let server_origin = origin(&url);
        let credentials = match &per_share {
            Some(credentials) => Some(credentials.clone()),
            None if server_origin == origin(&self.default_url) => self.default_credentials.clone(),
            None => None,
        };
        let mut config = ClientConfig::new(url.clone()).with_timeout(self.timeout);
        if let Some(credentials) = credentials {
            config = config.with_credentials(credentials);
        }
        let api = match self.api {
            ApiVersion::Auto => self.probe(&server_origin, config.clone()).await?,
            fixed => fixed,
        };
        let client = OtsClient::with_http(config.with_api(api), self.http.clone())?;
        Ok(Server {
            client,
            url: url.as_str().trim_end_matches('/').to_owned(),
            per_share_credentials: per_share,
        })
    }

    /// The API version a server offers, asked once per server and remembered.
    async fn probe(&self, server_origin: &str, config: ClientConfig) -> Result<ApiVersion, Error> {
        let known = self
            .probed
            .lock()
            .ok()
            .and_then(|m| m.get(server_origin).copied());
        let resolved = match known {
            Some(api) => api,
            None => {
                let client =
                    OtsClient::with_http(config.with_api(ApiVersion::Auto), self.http.clone())?;
                let api = self
                    .throttle
                    .run(server_origin, "status", client.api_version())
                    .await?;
                if let Ok(mut map) = self.probed.lock() {
                    map.insert(server_origin.to_owned(), api);
                }
                api
            }
        };
        Ok(ApiVersion::from(resolved))
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
