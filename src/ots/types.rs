//! Requests and answers of the Onetime Secret API, independent of the API version.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::validate::key_prefix;

/// The API version a client actually uses once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolvedApi {
    /// `/api/v1`, form-encoded requests.
    V1,
    /// `/api/v2`, JSON requests.
    V2,
}

impl ResolvedApi {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl fmt::Display for ResolvedApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// The server's word, `nominal` when healthy.
    pub status: String,
    /// The server's default locale (absent on old servers).
    pub locale: Option<String>,
    /// The API version that answered.
    pub api: ResolvedApi,
}

impl ServerStatus {
    /// Whether the server says it is healthy.
    pub fn is_nominal(&self) -> bool {
        self.status == "nominal"
    }
}

/// Share a given value.
#[derive(Clone)]
pub struct ShareRequest {
    /// The value to share (at most 10,000 bytes, not empty).
    pub secret: SecretString,
    /// A passphrase the reader must type (4 to 128 characters).
    pub passphrase: Option<SecretString>,
    /// Requested lifetime (at least 60 s); the server clamps it to its own limits.
    pub ttl: Option<Duration>,
    /// An email address the server sends the link to (needs an account).
    pub recipient: Option<String>,
    /// The account's custom domain the link is to be on (v2 `share_domain`). v1 has no such
    /// field: a request with one is refused there before anything is sent.
    pub share_domain: Option<String>,
}

impl ShareRequest {
    /// A share of `secret` with the server's defaults for everything else.
    pub fn new(secret: impl Into<SecretString>) -> Self {
        Self {
            secret: secret.into(),
            passphrase: None,
            ttl: None,
            recipient: None,
            share_domain: None,
        }
    }

    /// The same request with its link on the account's custom domain `domain`.
    pub fn with_share_domain(mut self, domain: impl Into<String>) -> Self {
        self.share_domain = Some(domain.into());
        self
    }

    /// The same request protected by a passphrase.
    pub fn with_passphrase(mut self, passphrase: impl Into<SecretString>) -> Self {
        self.passphrase = Some(passphrase.into());
        self
    }

    /// The same request with a requested lifetime.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The same request emailed to a recipient.
    pub fn with_recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }
}

impl fmt::Debug for ShareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareRequest")
            .field("secret", &"[REDACTED]")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .field("ttl", &self.ttl)
            .field("recipient", &self.recipient)
            .field("share_domain", &self.share_domain)
            .finish()
    }
}

/// Have the server generate a random value and share it.
#[derive(Clone, Default)]
pub struct GenerateRequest {
    /// A passphrase the reader must type (4 to 128 characters).
    pub passphrase: Option<SecretString>,
    /// Requested lifetime (at least 60 s); the server clamps it to its own limits.
    pub ttl: Option<Duration>,
    /// An email address the server sends the link to (needs an account).
    pub recipient: Option<String>,
    /// Length of the generated value (server default 12, at most 128).
    pub length: Option<u32>,
    /// The account's custom domain the link is to be on (v2 `share_domain`; see
    /// [`ShareRequest::share_domain`]).
    pub share_domain: Option<String>,
}

impl fmt::Debug for GenerateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateRequest")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .field("ttl", &self.ttl)
            .field("recipient", &self.recipient)
            .field("length", &self.length)
            .field("share_domain", &self.share_domain)
            .finish()
    }
}

/// The lifecycle state of a shared secret, as the receipt reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretState {
    /// Shared and not yet opened (v2's internal word: `shared`).
    New,
    /// The link was opened but the value not revealed (v2: `previewed`).
    Viewed,
    /// The value was revealed; the secret is gone (v2: `revealed`).
    Received,
    /// Destroyed by its creator before anyone read it.
    Burned,
    /// Its lifetime ran out before anyone read it.
    Expired,
    /// The secret vanished before its time without being read or burned.
    Orphaned,
    /// A word this client does not know (kept as sent).
    Unknown(String),
}

impl SecretState {
    /// Parses the server's word, accepting v1 words and v2's internal ones.
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "new" | "shared" => Self::New,
            "viewed" | "previewed" => Self::Viewed,
            "received" | "revealed" => Self::Received,
            "burned" => Self::Burned,
            "expired" => Self::Expired,
            "orphaned" => Self::Orphaned,
            _ => Self::Unknown(word.chars().take(64).collect()),
        }
    }

    /// The v1 word for this state (`new`, `viewed`, `received`, `burned`, `expired`, `orphaned`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::New => "new",
            Self::Viewed => "viewed",
            Self::Received => "received",
            Self::Burned => "burned",
            Self::Expired => "expired",
            Self::Orphaned => "orphaned",
            Self::Unknown(word) => word,
        }
    }

    /// Whether the state can no longer change: the secret is gone for good.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Received | Self::Burned | Self::Expired | Self::Orphaned
        )
    }
}

impl fmt::Display for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a burn achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurnOutcome {
    /// This call destroyed the unread secret; the receipt as the server returned it, with its
    /// state set to `burned` (servers serialize the receipt as loaded, before the burn).
    Burned(Box<Receipt>),
    /// The secret was already gone; `state` is the receipt's final state (`received`, `burned`,
    /// `expired` or `orphaned`; `expired` also when the receipt itself is gone).
    AlreadyGone {
        /// The final state the receipt reported.
        state: SecretState,
        /// When the secret was revealed (Unix seconds), if it was.
        received: Option<i64>,
    },
}

/// A burn answer before it is confirmed (internal).
#[derive(Debug)]
pub(crate) enum BurnAnswer {
    /// The server burned the secret.
    Burned(Box<Receipt>),
    /// The server answered without burning (already consumed, or a concurrent reveal won).
    NotBurned,
}

/// What a batch status call (v2 `POST /secret/status`) says of one secret it was asked about.
///
/// The answer lists only the secrets still unread; one it leaves out was revealed, burned or
/// has expired (or never existed), and only its receipt tells which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Listed: nobody has revealed it yet.
    Yes {
        /// The server marked it previewed (its page was opened, the secret not revealed).
        previewed: bool,
    },
    /// Not listed: read the receipt to learn what happened.
    Left,
}

/// What the creator of a secret can see about it (the "metadata" or "receipt").
///
/// `Debug` shows only short prefixes of the keys: both are bearer capabilities.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The receipt's key (`metadata_key`), the creator's handle for status and burn.
    pub metadata_key: String,
    /// The secret's key (the link's last part); `None` once the secret is gone or withheld.
    pub secret_key: Option<String>,
    /// Where the secret is in its lifecycle.
    pub state: SecretState,
    /// The lifetime the server granted, in seconds (it clamps requests silently).
    pub ttl: Option<u64>,
    /// Seconds the secret has left, when the server says.
    pub secret_ttl: Option<u64>,
    /// Seconds the receipt has left (it lives about twice the secret's lifetime).
    pub metadata_ttl: Option<u64>,
    /// When the secret was created (Unix seconds).
    pub created: Option<i64>,
    /// When the receipt last changed (Unix seconds).
    pub updated: Option<i64>,
    /// When the secret was revealed (Unix seconds).
    pub received: Option<i64>,
    /// When someone first opened the link, revealed or not (Unix seconds): v2 receipt views'
    /// `details.first_access` (access telemetry, shared/ots-api.md §13.13). `None` where the
    /// server does not say (v1, older v2) or nobody opened it.
    pub first_access: Option<i64>,
    /// Whether the reader must type a passphrase (not reported by every endpoint).
    pub passphrase_required: Option<bool>,
    /// The creator's link as the server reported it (v0.24+).
    pub receipt_url: Option<Url>,
    /// Recipients the link was emailed to, masked by the server.
    pub recipients: Vec<String>,
    /// The custom domain the server put the links on (`share_domain`); `None`: its own host.
    pub share_domain: Option<String>,
}

impl Receipt {
    /// The creator's link: the server's `receipt_url` when it sent one, else `BASE/receipt/KEY`
    /// (BASE on the receipt's share domain, when it has one).
    pub fn receipt_link(&self, base_url: &Url) -> Url {
        self.receipt_url.clone().unwrap_or_else(|| {
            super::client::link(&self.link_base(base_url), "receipt", &self.metadata_key)
        })
    }

    /// The reader's link `BASE/secret/KEY`, while the receipt still shows the secret key. On a
    /// share domain, BASE is `SCHEME://DOMAIN` (the server's scheme), as the server builds its
    /// own `share_url`.
    pub fn secret_link(&self, base_url: &Url) -> Option<Url> {
        let base = self.link_base(base_url);
        self.secret_key
            .as_deref()
            .map(|key| super::client::link(&base, "secret", key))
    }

    /// Where the links live: the share domain under the server's scheme, else `base_url`.
    pub fn link_base(&self, base_url: &Url) -> Url {
        self.share_domain
            .as_deref()
            .and_then(|domain| share_domain_base(base_url, domain))
            .unwrap_or_else(|| base_url.clone())
    }
}

/// `SCHEME://DOMAIN/` for a share domain that is a plain DNS name (no port, user or path: a
/// server cannot make a link point anywhere but at a host by that name).
pub fn share_domain_base(base_url: &Url, domain: &str) -> Option<Url> {
    let plain = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !plain {
        return None;
    }
    let url = Url::parse(&format!("{}://{domain}/", base_url.scheme())).ok()?;
    (url.host_str() == Some(domain.to_ascii_lowercase().as_str())).then_some(url)
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field(
                "metadata_key",
                &format_args!("{}…", key_prefix(&self.metadata_key)),
            )
            .field(
                "secret_key",
                &self
                    .secret_key
                    .as_deref()
                    .map(|key| format!("{}…", key_prefix(key))),
            )
            .field("state", &self.state)
            .field("ttl", &self.ttl)
            .field("secret_ttl", &self.secret_ttl)
            .field("metadata_ttl", &self.metadata_ttl)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .field("received", &self.received)
            .field("first_access", &self.first_access)
            .field("passphrase_required", &self.passphrase_required)
            .field(
                "receipt_url",
                &self.receipt_url.as_ref().map(|_| "[present]"),
            )
            .field("recipients", &self.recipients)
            .field("share_domain", &self.share_domain)
            .finish()
    }
}

/// What a parsed receipt says, on one line (keys in full), for tests to compare whole receipts
/// at a glance: `-` stands for a field the answer did not give.
#[cfg(test)]
pub fn receipt_line(r: &Receipt) -> String {
    fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or_else(|| "-".to_owned(), |v| v.to_string())
    }
    format!(
        "{} secret={} {:?} ttl={}/{}/{} created={} updated={} received={} opened={} passphrase={} url={} to={}",
        r.metadata_key,
        or_dash(r.secret_key.as_deref()),
        r.state,
        or_dash(r.ttl),
        or_dash(r.secret_ttl),
        or_dash(r.metadata_ttl),
        or_dash(r.created),
        or_dash(r.updated),
        or_dash(r.received),
        or_dash(r.first_access),
        or_dash(r.passphrase_required),
        or_dash(r.receipt_url.as_ref()),
        r.recipients.join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_state_words_parse_to_the_same_states() {
        for (words, state) in [
            (["new", "shared"], SecretState::New),
            (["viewed", "previewed"], SecretState::Viewed),
            (["received", "revealed"], SecretState::Received),
            (["burned", "burned"], SecretState::Burned),
            (["expired", "expired"], SecretState::Expired),
            (["orphaned", "orphaned"], SecretState::Orphaned),
        ] {
            for word in words {
                assert_eq!(SecretState::parse(word), state, "{word}");
            }
        }
        assert_eq!(
            SecretState::parse("archived"),
            SecretState::Unknown("archived".into())
        );
    }

    #[test]
    fn states_print_as_v1_words() {
        assert_eq!(SecretState::parse("revealed").as_str(), "received");
        assert_eq!(SecretState::parse("previewed").to_string(), "viewed");
        assert_eq!(SecretState::parse("shared").as_str(), "new");
        assert_eq!(SecretState::parse("weird").as_str(), "weird");
    }

    #[test]
    fn only_gone_states_are_final() {
        assert!(!SecretState::New.is_final());
        assert!(!SecretState::Viewed.is_final());
        assert!(!SecretState::Unknown("x".into()).is_final());
        for state in [
            SecretState::Received,
            SecretState::Burned,
            SecretState::Expired,
            SecretState::Orphaned,
        ] {
            assert!(state.is_final(), "{state}");
        }
    }

    #[test]
    fn request_debug_hides_secret_and_passphrase() {
        let share = ShareRequest::new("the-secret-value-42")
            .with_passphrase("pass-phrase-77")
            .with_ttl(Duration::from_secs(3600))
            .with_recipient("bob@example.com");
        let generate = GenerateRequest {
            passphrase: Some("pass-phrase-77".into()),
            ..GenerateRequest::default()
        };
        for text in [
            format!("{share:?}"),
            format!("{share:#?}"),
            format!("{generate:?}"),
        ] {
            assert!(!text.contains("the-secret-value-42"), "{text}");
            assert!(!text.contains("pass-phrase-77"), "{text}");
            assert!(text.contains("[REDACTED]"), "{text}");
        }
    }

    fn receipt() -> Receipt {
        Receipt {
            metadata_key: "mkey1234567890abcdefghij".into(),
            secret_key: Some("skey1234567890abcdefghij".into()),
            state: SecretState::New,
            ttl: Some(3600),
            secret_ttl: Some(3599),
            metadata_ttl: Some(7199),
            created: Some(1),
            updated: Some(1),
            received: None,
            first_access: None,
            passphrase_required: Some(false),
            receipt_url: None,
            recipients: vec![],
            share_domain: None,
        }
    }

    #[test]
    fn links_on_a_share_domain_use_the_servers_scheme_and_that_host_alone() {
        let base = Url::parse("https://ots.internal:8443/sub/").unwrap();
        let mut r = receipt();
        r.share_domain = Some("secrets.example.com".into());
        assert_eq!(
            r.secret_link(&base).unwrap().as_str(),
            "https://secrets.example.com/secret/skey1234567890abcdefghij"
        );
        assert_eq!(
            r.receipt_link(&base).as_str(),
            "https://secrets.example.com/receipt/mkey1234567890abcdefghij"
        );
        // Anything but a plain DNS name leaves the links on the server's own URL.
        for odd in ["evil.example/x", "a@b.example", "h.example:99", ""] {
            r.share_domain = Some(odd.into());
            assert!(
                r.secret_link(&base)
                    .unwrap()
                    .as_str()
                    .starts_with("https://ots.internal:8443/sub/secret/"),
                "{odd}"
            );
        }
    }

    #[test]
    fn receipt_debug_shows_only_key_prefixes() {
        let text = format!("{:?}", receipt());
        assert!(!text.contains("mkey1234567890abcdefghij"), "{text}");
        assert!(!text.contains("skey1234567890abcdefghij"), "{text}");
        assert!(text.contains("mkey12"), "{text}");
    }

    #[test]
    fn receipt_link_prefers_the_servers_receipt_url() {
        let base = Url::parse("https://eu.onetimesecret.com").unwrap();
        let mut r = receipt();
        assert_eq!(
            r.receipt_link(&base).as_str(),
            "https://eu.onetimesecret.com/receipt/mkey1234567890abcdefghij"
        );
        r.receipt_url = Some(Url::parse("https://share.example.com/receipt/mkey").unwrap());
        assert_eq!(
            r.receipt_link(&base).as_str(),
            "https://share.example.com/receipt/mkey"
        );
        assert_eq!(
            r.secret_link(&base).unwrap().as_str(),
            "https://eu.onetimesecret.com/secret/skey1234567890abcdefghij"
        );
        r.secret_key = None;
        assert_eq!(r.secret_link(&base), None);
    }
}
