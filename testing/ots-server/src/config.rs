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
/// Free-tier ttl ceiling (14 days): `DEFAULT_FREE_TTL` in
/// `lib/onetime/models/features/with_entitlements.rb:54` (de53ff8f7). Above it, a v2 create by
/// an account without `extended_default_expiration` is refused with 403.
pub const FREE_TTL: u64 = 1_209_600;

/// Which release of the real server the test server imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// onetimesecret.com today (de53ff8f7, v0.26.x): the behaviour of `shared/ots-api.md`.
    #[default]
    Current,
    /// Self-hosted v0.21–v0.23 (tag v0.23.6): v2 failures are HTTP 500 `{message, success:false}`,
    /// validation errors 422 `{shrimp, message, success:false}`, 31-character keys.
    V0_23,
    /// Self-hosted v0.18–v0.20 (tag v0.20.5): like v0.23, but v2 has only `/private/*`
    /// receipt routes (no `/receipt/*`, no guest routes) and unknown routes answer
    /// 404 `{"message":"Not Found"}`.
    V0_20,
}

impl Profile {
    /// The name used by `--profile`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Current => "current",
            Profile::V0_23 => "v0.23",
            Profile::V0_20 => "v0.20",
        }
    }

    /// Whether this profile is one of the old self-hosted releases (v0.20, v0.23).
    pub fn is_legacy(self) -> bool {
        self != Profile::Current
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `--profile` or `--plan` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {given:?}; expected one of: {expected}")]
pub struct ParseChoiceError {
    what: &'static str,
    given: String,
    expected: &'static str,
}

impl std::str::FromStr for Profile {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "current" => Ok(Profile::Current),
            "v0.23" => Ok(Profile::V0_23),
            "v0.20" => Ok(Profile::V0_20),
            _ => Err(ParseChoiceError {
                what: "profile",
                given: s.to_owned(),
                expected: "current, v0.23, v0.20",
            }),
        }
    }
}

/// The billing plan of every configured account (anonymous callers always get the anonymous
/// limits). See the README's plan table for what each one means per profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Plan {
    /// Accounts authenticate but get the anonymous limits: 7-day ttl cap and no
    /// `extended_default_expiration` (v0.23.6 `lib/onetime/plan.rb:68`, plan `anonymous`).
    Anonymous,
    /// The free plan: 14-day cap (`free_v1`, `etc/examples/billing.example.yaml:192-225`,
    /// de53ff8f7; v0.23.6 plan `basic`), no `extended_default_expiration`.
    Free,
    /// A paid plan: `ttl_max_authenticated` (default 30 days) and `extended_default_expiration`
    /// (`identity_plus_v1`, `billing.example.yaml:234-280`; v0.23.6 plan `identity`).
    #[default]
    Paid,
}

impl Plan {
    /// The name used by `--plan`.
    pub fn name(self) -> &'static str {
        match self {
            Plan::Anonymous => "anonymous",
            Plan::Free => "free",
            Plan::Paid => "paid",
        }
    }

    /// The plan id the real server reports as `current_plan` (de53ff8f7 billing catalog).
    pub(crate) fn plan_id(self) -> &'static str {
        match self {
            Plan::Anonymous => "anonymous",
            Plan::Free => "free_v1",
            Plan::Paid => "identity_plus_v1",
        }
    }

    /// Whether the plan carries `extended_default_expiration` (ttl above 14 days on v2).
    pub(crate) fn extended_expiration(self) -> bool {
        self == Plan::Paid
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Plan {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "anonymous" => Ok(Plan::Anonymous),
            "free" => Ok(Plan::Free),
            "paid" => Ok(Plan::Paid),
            _ => Err(ParseChoiceError {
                what: "plan",
                given: s.to_owned(),
                expected: "anonymous, free, paid",
            }),
        }
    }
}

/// Test server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Accounts that may authenticate with HTTP Basic (email + API token).
    pub accounts: Vec<Account>,
    /// Issue 31-character keys (v0.23 and earlier) instead of 62-character ones. The
    /// `V0_23` and `V0_20` profiles always issue 31-character keys, as those servers did.
    pub legacy_keys: bool,
    /// Serve `/api/v2` (off: it answers 404 like a pre-v0.18 server).
    pub enable_v2: bool,
    /// Longest ttl granted to anonymous creators (seconds).
    pub ttl_max_anonymous: u64,
    /// Longest ttl granted to authenticated creators on the `Paid` plan (seconds); `Free`
    /// accounts get at most 14 days of it and `Anonymous`-plan accounts `ttl_max_anonymous`.
    pub ttl_max_authenticated: u64,
    /// Initial fault switches.
    pub faults: Faults,
    /// Base URL used in `metadata_url`, `receipt_url` and `share_domain`; default the listen URL.
    pub public_url: Option<String>,
    /// Which release of the real server to imitate (default `Current`).
    pub profile: Profile,
    /// Plan of every configured account (default `Paid`); anonymous callers always get the
    /// anonymous limits.
    pub plan: Plan,
    /// Whether anonymous v2 calls are allowed (`API_GUEST_ROUTES_ENABLED`, default true). Off:
    /// anonymous conceal/generate/show/reveal/receipt/burn answer 403 `GuestRoutesDisabled`
    /// (`lib/onetime/logic/guest_route_gating.rb:41-70`, de53ff8f7). v1 is never gated.
    pub guest_routes: bool,
    /// v2's `SECRET_MAX_LENGTH` in bytes (default 10000). v1's limit is a constant 10000
    /// upstream (`V1_MAX_SECRET_SIZE`, `apps/api/v1/logic/secrets/base_secret_action.rb:63`).
    pub max_secret_bytes: usize,
    /// Custom domains registered on the server, each with the account that owns it. A v2
    /// create (current profile) with another `share_domain` than the site's own host is
    /// refused unless its caller owns that domain: unknown domain 422, someone else's or an
    /// anonymous caller 403.
    pub custom_domains: Vec<CustomDomain>,
}

/// A custom domain an account registered (and verified) on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomDomain {
    /// The domain, e.g. secrets.example.com.
    pub domain: String,
    /// The email of the account that owns it.
    pub owner: String,
}

impl CustomDomain {
    /// `domain`, owned by the account `owner` (its email).
    pub fn new(domain: impl Into<String>, owner: impl Into<String>) -> Self {
        CustomDomain {
            domain: domain.into(),
            owner: owner.into(),
        }
    }
}

impl Config {
    /// Whether keys are 31 characters long (the flag, or an old profile).
    pub(crate) fn short_keys(&self) -> bool {
        self.legacy_keys || self.profile.is_legacy()
    }
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
            profile: Profile::Current,
            plan: Plan::Paid,
            guest_routes: true,
            max_secret_bytes: SECRET_MAX_BYTES,
            custom_domains: Vec::new(),
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
