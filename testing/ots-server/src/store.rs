//! Secrets and receipts in memory, and the state machine that moves them.
//!
//! One mutex guards both maps, so every transition (notably the one-time reveal) is a
//! compare-and-set: exactly one caller can take a secret.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::keys;

/// Failed passphrase attempts per secret (global tier) before a lockout.
pub(crate) const GLOBAL_MAX_ATTEMPTS: u32 = 20;
/// Failed passphrase attempts per secret and client IP (v2 tier) before a lockout.
pub(crate) const IP_MAX_ATTEMPTS: u32 = 5;
/// Window in which failed attempts are counted (seconds).
pub(crate) const ATTEMPT_WINDOW: u64 = 600;
/// How long a lockout lasts (seconds).
pub(crate) const LOCKOUT_DURATION: u64 = 1800;
/// How long after creation a generated value is shown once on the receipt (seconds).
pub(crate) const GENERATED_VALUE_DISPLAY_TTL: u64 = 60;
/// How far back `recent` looks (seconds).
pub(crate) const RECENT_WINDOW: u64 = 30 * 86_400;

/// Lifecycle state of a receipt (internal names; see [`State::v1_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Created, not yet read (`shared`; v1 `new`).
    New,
    /// Read once and gone (`revealed`; v1 `received`).
    Received,
    /// Destroyed by its creator.
    Burned,
    /// The secret's ttl ran out before anyone read it.
    Expired,
    /// The secret vanished early for another reason.
    Orphaned,
}

impl State {
    /// The word the v1 API uses.
    pub(crate) fn v1_name(self) -> &'static str {
        match self {
            State::New => "new",
            State::Received => "received",
            State::Burned => "burned",
            State::Expired => "expired",
            State::Orphaned => "orphaned",
        }
    }

    /// The word the v2 API uses (the internal state names).
    pub(crate) fn v2_name(self) -> &'static str {
        match self {
            State::New => "new",
            State::Received => "revealed",
            State::Burned => "burned",
            State::Expired => "expired",
            State::Orphaned => "orphaned",
        }
    }

    /// Whether the secret can no longer be read.
    pub(crate) fn is_final(self) -> bool {
        self != State::New
    }
}

/// How a secret came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The creator supplied the value.
    Conceal,
    /// The server generated the value.
    Generate,
}

impl Kind {
    /// The `kind` a v2 answer names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Conceal => "conceal",
            Kind::Generate => "generate",
        }
    }
}

/// A secret to create.
pub(crate) struct NewSecret {
    pub(crate) value: SecretString,
    pub(crate) passphrase: Option<SecretString>,
    /// Already clamped.
    pub(crate) ttl: u64,
    /// `None` for anonymous creators.
    pub(crate) owner: Option<String>,
    /// Already masked.
    pub(crate) recipients: Vec<String>,
    pub(crate) share_domain: String,
    pub(crate) kind: Kind,
}

struct Secret {
    metadata_key: String,
    value: SecretString,
    passphrase: Option<SecretString>,
    expires_at: u64,
    share_domain: String,
    attempts: Attempts,
    ip_attempts: HashMap<String, Attempts>,
}

#[derive(Default, Clone)]
struct Attempts {
    count: u32,
    window_ends: u64,
    locked_until: u64,
}

impl Attempts {
    fn locked(&self, now: u64) -> Option<u64> {
        (now < self.locked_until).then(|| self.locked_until - now)
    }

    fn record(&mut self, now: u64, max: u32) {
        if now >= self.window_ends {
            self.count = 0;
            self.window_ends = now + ATTEMPT_WINDOW;
        }
        self.count += 1;
        if self.count >= max {
            self.locked_until = now + LOCKOUT_DURATION;
            self.count = 0;
            self.window_ends = 0;
        }
    }
}

struct Receipt {
    secret_key: String,
    owner: Option<String>,
    ttl: u64,
    created: u64,
    updated: u64,
    received: Option<u64>,
    burned: Option<u64>,
    state: State,
    recipients: Vec<String>,
    share_domain: String,
    has_passphrase: bool,
    kind: Kind,
    generated_value: Option<SecretString>,
    /// Access timeline: when the secret link was fetched without a reveal (v2 show/status).
    accesses: Vec<u64>,
}

impl Receipt {
    fn expires_at(&self) -> u64 {
        self.created.saturating_add(self.ttl.saturating_mul(2))
    }

    fn secret_expires_at(&self) -> u64 {
        self.created.saturating_add(self.ttl)
    }
}

/// A receipt as seen at one moment, for rendering.
#[derive(Clone, Debug)]
pub(crate) struct ReceiptView {
    pub(crate) metadata_key: String,
    /// The secret key, always known internally (renderers hide it when the secret is gone).
    pub(crate) secret_key: String,
    /// Whether the secret can still be read.
    pub(crate) secret_live: bool,
    pub(crate) owner: Option<String>,
    pub(crate) ttl: u64,
    pub(crate) metadata_ttl: u64,
    /// Seconds the secret has left, while it is live.
    pub(crate) secret_ttl: Option<u64>,
    pub(crate) state: State,
    pub(crate) created: u64,
    pub(crate) updated: u64,
    pub(crate) received: Option<u64>,
    pub(crate) burned: Option<u64>,
    pub(crate) recipients: Vec<String>,
    pub(crate) share_domain: String,
    pub(crate) has_passphrase: bool,
    pub(crate) kind: Kind,
    /// A generated value, on the first receipt view within 60 s (and in the create answer).
    pub(crate) value: Option<SecretString>,
    /// How often the secret link was fetched without a reveal (access telemetry).
    pub(crate) access_count: usize,
    /// When it was first fetched (Unix s).
    pub(crate) first_access: Option<u64>,
    /// When it was last fetched (Unix s).
    pub(crate) last_access: Option<u64>,
}

/// A live secret's public facts (no value).
#[derive(Clone, Debug)]
pub(crate) struct SecretView {
    pub(crate) secret_key: String,
    pub(crate) secret_ttl: u64,
    pub(crate) has_passphrase: bool,
    pub(crate) share_domain: String,
    pub(crate) created: u64,
    pub(crate) updated: u64,
    /// Lifetime granted at creation.
    pub(crate) ttl: u64,
    pub(crate) owner: Option<String>,
    /// Whether this view is of a secret that was just revealed.
    pub(crate) revealed: bool,
}

/// The passphrase gate's inputs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GateInput<'a> {
    /// The passphrase sent, if any.
    pub(crate) passphrase: Option<&'a str>,
    /// Enables the per-IP lockout tier (v2).
    pub(crate) client_ip: Option<&'a str>,
    /// Whether a missing/empty passphrase counts as a failed attempt.
    pub(crate) count_missing: bool,
}

/// A successful reveal (or, without `consume`, a successful check).
pub(crate) struct Revealed {
    pub(crate) view: SecretView,
    pub(crate) value: Option<SecretString>,
}

/// Why a reveal failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RevealError {
    /// No such live secret (never existed, consumed, burned, expired).
    Unknown,
    /// Passphrase missing or wrong; the secret stays and the attempt was counted.
    WrongPassphrase,
    /// Too many wrong passphrases; locked for this many more seconds.
    Locked(u64),
}

/// How a burn that passed its checks ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Burn {
    /// This call destroyed the secret.
    Burned,
    /// Checked only: the caller did not confirm (v2 without `continue: true`).
    NotConfirmed,
    /// A concurrent reveal or burn took the secret between the check and the claim.
    Lost,
}

/// Why a burn failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BurnError {
    /// No such receipt (never existed, or gone after 2×ttl).
    NoReceipt,
    /// The receipt exists but its secret is gone (revealed, burned, expired).
    SecretGone,
    /// The secret has a passphrase and it was missing or wrong.
    IncorrectPassphrase,
    /// Too many wrong passphrases; locked for this many more seconds.
    Locked(u64),
}

/// A live secret as reported to tests (no value).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveReceipt {
    /// Receipt (metadata) key.
    pub metadata_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Granted lifetime in seconds.
    pub ttl: u64,
    /// Seconds left before the secret expires.
    pub secret_ttl: u64,
    /// Whether a passphrase protects it.
    pub passphrase_required: bool,
    /// Creator: account email or `anon`.
    pub custid: String,
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, Secret>,
    receipts: HashMap<String, Receipt>,
}

/// Every secret and receipt the server holds.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    pub(crate) clock: Clock,
    legacy_keys: bool,
}

fn passphrase_matches(stored: &SecretString, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    bool::from(stored.expose_secret().as_bytes().ct_eq(given.as_bytes()))
}

impl Store {
    /// An empty store issuing 62- or (legacy) 31-character keys.
    pub(crate) fn new(legacy_keys: bool) -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            clock: Clock::default(),
            legacy_keys,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters to a test server, so carry on with the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a secret and its receipt; returns the receipt (with a generated value echoed).
    pub(crate) fn create(&self, new: NewSecret) -> ReceiptView {
        let now = self.clock.now();
        let metadata_key = keys::new_key(self.legacy_keys);
        let secret_key = keys::new_key(self.legacy_keys);
        let has_passphrase = new.passphrase.is_some();
        let generated_value = (new.kind == Kind::Generate)
            .then(|| SecretString::from(new.value.expose_secret().to_owned()));
        let receipt = Receipt {
            secret_key: secret_key.clone(),
            owner: new.owner,
            ttl: new.ttl,
            created: now,
            updated: now,
            received: None,
            burned: None,
            state: State::New,
            recipients: new.recipients,
            share_domain: new.share_domain.clone(),
            has_passphrase,
            kind: new.kind,
            generated_value,
            accesses: Vec::new(),
        };
        let secret = Secret {
            metadata_key: metadata_key.clone(),
            value: new.value,
            passphrase: new.passphrase,
            expires_at: now.saturating_add(new.ttl),
            share_domain: new.share_domain,
            attempts: Attempts::default(),
            ip_attempts: HashMap::new(),
        };
        let mut inner = self.lock();
        let mut view = Self::view(&metadata_key, &receipt, true, now);
        view.value = receipt
            .generated_value
            .as_ref()
            .map(|v| SecretString::from(v.expose_secret().to_owned()));
        inner.secrets.insert(secret_key, secret);
        inner.receipts.insert(metadata_key, receipt);
        view
    }

    fn view(metadata_key: &str, r: &Receipt, secret_live: bool, now: u64) -> ReceiptView {
        ReceiptView {
            metadata_key: metadata_key.to_owned(),
            secret_key: r.secret_key.clone(),
            secret_live,
            owner: r.owner.clone(),
            ttl: r.ttl,
            metadata_ttl: r.expires_at().saturating_sub(now),
            secret_ttl: secret_live.then(|| r.secret_expires_at().saturating_sub(now)),
            state: r.state,
            created: r.created,
            updated: r.updated,
            received: r.received,
            burned: r.burned,
            recipients: r.recipients.clone(),
            share_domain: r.share_domain.clone(),
            has_passphrase: r.has_passphrase,
            kind: r.kind,
            value: None,
            access_count: r.accesses.len(),
            first_access: r.accesses.first().copied(),
            last_access: r.accesses.last().copied(),
        }
    }

    /// Drops the receipt if it outlived 2×ttl, and settles a lapsed secret as expired or
    /// orphaned. Returns whether the receipt (still) exists and whether its secret is live.
    fn settle(inner: &mut Inner, metadata_key: &str, now: u64) -> Option<bool> {
        let receipt = inner.receipts.get_mut(metadata_key)?;
        if now >= receipt.expires_at() {
            let sk = receipt.secret_key.clone();
            inner.receipts.remove(metadata_key);
            inner.secrets.remove(&sk);
            return None;
        }
        let secret_live = match inner.secrets.get(&receipt.secret_key) {
            Some(s) if now < s.expires_at => true,
            Some(_) => {
                inner.secrets.remove(&receipt.secret_key);
                false
            }
            None => false,
        };
        if !secret_live && receipt.state == State::New {
            receipt.state = if now >= receipt.secret_expires_at() {
                State::Expired
            } else {
                State::Orphaned
            };
            receipt.updated = now;
        }
        Some(secret_live)
    }

    /// The receipt for a metadata key, or `None` when unknown or gone. The first view within
    /// 60 s of a generated secret carries its value, once.
    pub(crate) fn receipt(&self, metadata_key: &str) -> Option<ReceiptView> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let live = Self::settle(&mut inner, metadata_key, now)?;
        let receipt = inner.receipts.get_mut(metadata_key)?;
        let mut view = Self::view(metadata_key, receipt, live, now);
        if live
            && receipt.state == State::New
            && now.saturating_sub(receipt.created) < GENERATED_VALUE_DISPLAY_TTL
        {
            view.value = receipt.generated_value.take();
        }
        Some(view)
    }

    /// Facts about a live secret, by secret key.
    pub(crate) fn secret(&self, secret_key: &str) -> Option<SecretView> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let mk = inner.secrets.get(secret_key)?.metadata_key.clone();
        if !Self::settle(&mut inner, &mk, now)? {
            return None;
        }
        let secret = inner.secrets.get(secret_key)?;
        let receipt = inner.receipts.get(&mk)?;
        Some(Self::secret_view(secret_key, secret, receipt, now))
    }

    /// Records a fetch of a live secret's link on its receipt's access timeline
    /// (`record_access_telemetry`, apps/api/v2/logic/secrets/access_telemetry.rb:38-56,
    /// de53ff8f7).
    pub(crate) fn record_access(&self, secret_key: &str) {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Some(mk) = inner
            .secrets
            .get(secret_key)
            .map(|s| s.metadata_key.clone())
        else {
            return;
        };
        if let Some(r) = inner.receipts.get_mut(&mk) {
            r.accesses.push(now);
        }
    }

    /// The one-time reveal: checks lockout and passphrase, then (with `consume`) takes the
    /// secret atomically. Without `consume` it only checks (v2 without `continue:true`).
    pub(crate) fn reveal(
        &self,
        secret_key: &str,
        gate: GateInput<'_>,
        consume: bool,
    ) -> Result<Revealed, RevealError> {
        let now = self.clock.now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mk = inner
            .secrets
            .get(secret_key)
            .ok_or(RevealError::Unknown)?
            .metadata_key
            .clone();
        if !Self::settle(inner, &mk, now).ok_or(RevealError::Unknown)? {
            return Err(RevealError::Unknown);
        }
        let secret = inner
            .secrets
            .get_mut(secret_key)
            .ok_or(RevealError::Unknown)?;
        Self::check_gate(secret, gate, now).map_err(|e| match e {
            Gate::Locked(s) => RevealError::Locked(s),
            Gate::Wrong => RevealError::WrongPassphrase,
        })?;
        let receipt = inner.receipts.get(&mk).ok_or(RevealError::Unknown)?;
        let mut view = Self::secret_view(secret_key, secret, receipt, now);
        if !consume {
            return Ok(Revealed { view, value: None });
        }
        let secret = inner
            .secrets
            .remove(secret_key)
            .ok_or(RevealError::Unknown)?;
        if let Some(r) = inner.receipts.get_mut(&mk) {
            r.state = State::Received;
            r.received = Some(now);
            r.updated = now;
            r.generated_value = None;
        }
        view.revealed = true;
        view.updated = now;
        Ok(Revealed {
            view,
            value: Some(secret.value),
        })
    }

    fn secret_view(secret_key: &str, secret: &Secret, receipt: &Receipt, now: u64) -> SecretView {
        SecretView {
            secret_key: secret_key.to_owned(),
            secret_ttl: secret.expires_at.saturating_sub(now),
            has_passphrase: secret.passphrase.is_some(),
            share_domain: secret.share_domain.clone(),
            created: receipt.created,
            updated: receipt.updated,
            ttl: receipt.ttl,
            owner: receipt.owner.clone(),
            revealed: false,
        }
    }

    /// Passphrase gate with lockout; records a failure when the passphrase does not match.
    fn check_gate(secret: &mut Secret, gate: GateInput<'_>, now: u64) -> Result<(), Gate> {
        let GateInput {
            passphrase,
            client_ip,
            count_missing,
        } = gate;
        if let Some(ip) = client_ip
            && let Some(left) = secret.ip_attempts.get(ip).and_then(|a| a.locked(now))
        {
            return Err(Gate::Locked(left));
        }
        if let Some(left) = secret.attempts.locked(now) {
            return Err(Gate::Locked(left));
        }
        let Some(stored) = &secret.passphrase else {
            return Ok(());
        };
        if passphrase_matches(stored, passphrase) {
            return Ok(());
        }
        if !count_missing && passphrase.is_none_or(str::is_empty) {
            return Err(Gate::Wrong);
        }
        secret.attempts.record(now, GLOBAL_MAX_ATTEMPTS);
        if let Some(ip) = client_ip {
            secret
                .ip_attempts
                .entry(ip.to_owned())
                .or_default()
                .record(now, IP_MAX_ATTEMPTS);
        }
        Err(Gate::Wrong)
    }

    /// Burns the secret behind a receipt; a protected secret needs its passphrase.
    ///
    /// Like upstream it runs in two steps: load and check the secret, then claim it
    /// atomically (`apps/api/v2/logic/secrets/burn_secret.rb:53-100`, de53ff8f7). A reveal
    /// that takes the secret between the two wins, and the burn reports `Burn::Lost`.
    /// The view returned is the receipt as loaded *before* the burn (state `new`), which is
    /// what both APIs serialize (`shared/ots-api.md` §13.10). Without `confirm` it only
    /// checks (v2 without `continue:true`) and returns `Burn::NotConfirmed`.
    pub(crate) fn burn(
        &self,
        metadata_key: &str,
        gate: GateInput<'_>,
        confirm: bool,
    ) -> Result<(ReceiptView, Burn), BurnError> {
        let now = self.clock.now();
        let (before, sk) = {
            let mut inner = self.lock();
            let live = Self::settle(&mut inner, metadata_key, now).ok_or(BurnError::NoReceipt)?;
            if !live {
                return Err(BurnError::SecretGone);
            }
            let sk = inner
                .receipts
                .get(metadata_key)
                .ok_or(BurnError::NoReceipt)?
                .secret_key
                .clone();
            let secret = inner.secrets.get_mut(&sk).ok_or(BurnError::SecretGone)?;
            Self::check_gate(secret, gate, now).map_err(|e| match e {
                Gate::Locked(s) => BurnError::Locked(s),
                Gate::Wrong => BurnError::IncorrectPassphrase,
            })?;
            let receipt = inner
                .receipts
                .get(metadata_key)
                .ok_or(BurnError::NoReceipt)?;
            (Self::view(metadata_key, receipt, true, now), sk)
        };
        if !confirm {
            return Ok((before, Burn::NotConfirmed));
        }
        let mut inner = self.lock();
        if inner.secrets.remove(&sk).is_none() {
            return Ok((before, Burn::Lost));
        }
        if let Some(receipt) = inner.receipts.get_mut(metadata_key) {
            receipt.state = State::Burned;
            receipt.burned = Some(now);
            receipt.updated = now;
            receipt.generated_value = None;
        }
        Ok((before, Burn::Burned))
    }

    /// An account's receipts from the last 30 days, oldest first.
    pub(crate) fn recent(&self, owner: &str) -> Vec<ReceiptView> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let keys: Vec<String> = inner
            .receipts
            .iter()
            .filter(|(_, r)| {
                r.owner.as_deref() == Some(owner) && now.saturating_sub(r.created) < RECENT_WINDOW
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut views: Vec<ReceiptView> = keys
            .iter()
            .filter_map(|k| {
                let live = Self::settle(&mut inner, k, now)?;
                let r = inner.receipts.get(k)?;
                Some(Self::view(k, r, live, now))
            })
            .collect();
        views.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then(a.metadata_key.cmp(&b.metadata_key))
        });
        views
    }

    /// Every live (unread, unexpired, unburned) secret.
    pub(crate) fn live(&self) -> Vec<LiveReceipt> {
        let now = self.clock.now();
        let inner = self.lock();
        let mut out: Vec<LiveReceipt> = inner
            .secrets
            .iter()
            .filter(|(_, s)| now < s.expires_at)
            .filter_map(|(sk, s)| {
                let r = inner.receipts.get(&s.metadata_key)?;
                Some(LiveReceipt {
                    metadata_key: s.metadata_key.clone(),
                    secret_key: sk.clone(),
                    ttl: r.ttl,
                    secret_ttl: s.expires_at - now,
                    passphrase_required: s.passphrase.is_some(),
                    custid: r.owner.clone().unwrap_or_else(|| "anon".to_owned()),
                })
            })
            .collect();
        out.sort_by(|a, b| a.metadata_key.cmp(&b.metadata_key));
        out
    }

    /// Number of live secrets.
    pub(crate) fn live_count(&self) -> usize {
        let now = self.clock.now();
        self.lock()
            .secrets
            .values()
            .filter(|s| now < s.expires_at)
            .count()
    }
}

enum Gate {
    Wrong,
    Locked(u64),
}
