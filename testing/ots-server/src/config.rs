//! What a test server is started with.

use std::fmt;

use crate::faults::Faults;

/// Default lifetime of a secret when `ttl` is missing (7 days).
pub const DEFAULT_TTL: u64 = 604_800;
/// Shortest lifetime the server grants; anything lower (or unparseable) is clamped up to it.
pub const MIN_TTL: u64 = 60;
/// Largest secret accepted, in bytes.
pub const SECRET_MAX_BYTES: usize = 10_000;
/// Largest request body read; larger bodies get the "too large" error.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Test server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Accounts that may authenticate with HTTP Basic (email + API token).
    pub accounts: Vec<Account>,
    /// Issue 31-character keys (v0.23 and earlier) instead of 62-character ones.
    pub legacy_keys: bool,
    /// Serve `/api/v2` (off: it answers 404 like a pre-v0.18 server).
    pub enable_v2: bool,
    /// Longest ttl granted to anonymous creators (seconds).
    pub ttl_max_anonymous: u64,
    /// Longest ttl granted to authenticated creators (seconds).
    pub ttl_max_authenticated: u64,
    /// Initial fault switches.
    pub faults: Faults,
    /// Base URL used in `metadata_url`, `receipt_url` and `share_domain`; default the listen URL.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            accounts: Vec::new(),
            legacy_keys: false,
            enable_v2: true,
            ttl_max_anonymous: DEFAULT_TTL,
            ttl_max_authenticated: 2_592_000,
            faults: Faults::default(),
            public_url: None,
        }
    }
}

/// An account: HTTP Basic username (email) and API token.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Account email, the Basic auth username and the `custid` of its records.
    pub email: String,
    /// API token, the Basic auth password.
    pub token: String,
}

impl Account {
    /// An account with this email and API token.
    pub fn new(email: impl Into<String>, token: impl Into<String>) -> Self {
        Account {
            email: email.into(),
            token: token.into(),
        }
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("email", &self.email)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Why an `--account` flag could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("an account must be EMAIL:TOKEN with both parts non-empty")]
pub struct AccountParseError;

impl std::str::FromStr for Account {
    type Err = AccountParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((email, token)) if !email.is_empty() && !token.is_empty() => {
                Ok(Account::new(email, token))
            }
            _ => Err(AccountParseError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_debug_redacts_the_token() {
        let a = Account::new("a@example.com", "tok-very-secret");
        let shown = format!("{a:?}");
        assert!(shown.contains("a@example.com"));
        assert!(!shown.contains("tok-very-secret"));
    }

    #[test]
    fn account_parses_email_colon_token() {
        let a: Account = "a@example.com:t:k".parse().unwrap();
        assert_eq!(a.email, "a@example.com");
        assert_eq!(a.token, "t:k");
        assert!("nocolon".parse::<Account>().is_err());
        assert!(":tok".parse::<Account>().is_err());
    }
}
