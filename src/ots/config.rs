//! Where the client talks to and as whom.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Which API version the client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// v2 when the server offers it, else v1 (decided once per client by `GET /api/v2/status`).
    #[default]
    Auto,
    /// The legacy form-encoded API under `/api/v1`.
    V1,
    /// The JSON API under `/api/v2`.
    V2,
}

impl ApiVersion {
    /// The configuration word: `auto`, `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<super::types::ResolvedApi> for ApiVersion {
    /// Pins a version found by a probe, so later clients for the same server skip it.
    fn from(api: super::types::ResolvedApi) -> Self {
        match api {
            super::types::ResolvedApi::V1 => Self::V1,
            super::types::ResolvedApi::V2 => Self::V2,
        }
    }
}

/// An API version word other than `auto`, `v1` or `v2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API version {0:?}; expected auto, v1 or v2")]
pub struct ParseApiVersionError(String);

impl FromStr for ApiVersion {
    type Err = ParseApiVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            _ => Err(ParseApiVersionError(s.chars().take(32).collect())),
        }
    }
}

/// An account on the server: HTTP Basic with the account's email (or extid) and its API token.
#[derive(Clone)]
pub struct Credentials {
    /// The account's email address (or, on v0.24+, its extid).
    pub username: String,
    /// The account's API token.
    pub api_token: SecretString,
}

impl Credentials {
    /// Credentials from a username and an API token.
    pub fn new(username: impl Into<String>, api_token: impl Into<SecretString>) -> Self {
        Self {
            username: username.into(),
            api_token: api_token.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("api_token", &"[REDACTED]")
            .finish()
    }
}

/// Everything a client needs to know about one server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The site's base URL, e.g. `https://eu.onetimesecret.com` or `http://127.0.0.1:PORT`; the API
    /// lives under `/api/v1` and `/api/v2` below it and links under `/secret/` and `/receipt/`.
    pub base_url: Url,
    /// Which API version to speak.
    pub api: ApiVersion,
    /// The account to act as; anonymous when `None`.
    pub credentials: Option<Credentials>,
    /// Upper bound for one HTTP request, connect included.
    pub timeout: Duration,
    /// Largest secret the client-side check lets through, in bytes: the server's own limit
    /// (10,000 by default; a self-hosted server can be configured otherwise).
    pub max_secret_bytes: usize,
}

/// Default bound for one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl ClientConfig {
    /// Anonymous, automatic API version, 30-second timeout.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            api: ApiVersion::Auto,
            credentials: None,
            timeout: DEFAULT_TIMEOUT,
            max_secret_bytes: super::validate::MAX_SECRET_BYTES,
        }
    }

    /// The same configuration for a server that accepts secrets up to `bytes`.
    pub fn with_max_secret_bytes(mut self, bytes: usize) -> Self {
        self.max_secret_bytes = bytes;
        self
    }

    /// The same configuration with another API version.
    pub fn with_api(mut self, api: ApiVersion) -> Self {
        self.api = api;
        self
    }

    /// The same configuration acting as an account.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The same configuration with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_parses_and_prints_its_three_words() {
        for (word, version) in [
            ("auto", ApiVersion::Auto),
            ("v1", ApiVersion::V1),
            ("v2", ApiVersion::V2),
        ] {
            assert_eq!(word.parse::<ApiVersion>(), Ok(version));
            assert_eq!(version.to_string(), word);
        }
        assert_eq!("V2".parse::<ApiVersion>(), Ok(ApiVersion::V2));
        assert!("v3".parse::<ApiVersion>().is_err());
        assert_eq!(
            ApiVersion::from(crate::ots::ResolvedApi::V2),
            ApiVersion::V2
        );
        assert_eq!(ApiVersion::default(), ApiVersion::Auto);
    }

    #[test]
    fn credentials_debug_hides_the_token() {
        let credentials = Credentials::new("alice@example.com", "tok-very-secret-123");
        let config = ClientConfig::new(Url::parse("https://eu.onetimesecret.com").unwrap())
            .with_credentials(credentials.clone());
        for text in [
            format!("{credentials:?}"),
            format!("{config:?}"),
            format!("{config:#?}"),
        ] {
            assert!(!text.contains("tok-very-secret-123"), "{text}");
            assert!(text.contains("alice@example.com"), "{text}");
        }
    }

    #[test]
    fn new_config_is_anonymous_auto_with_thirty_second_timeout() {
        let config = ClientConfig::new(Url::parse("http://127.0.0.1:1").unwrap());
        assert_eq!(config.api, ApiVersion::Auto);
        assert!(config.credentials.is_none());
        assert_eq!(config.timeout, Duration::from_secs(30));
    }
}
