//! Secrets the server stored although the operator never got the answer (a timeout after the
//! store, a 5xx or garbage from a proxy, a reset connection): found and burned where the account
//! allows it, counted and reported where it does not. A share call without a trustworthy answer
//! is never blindly retried.

use super::{Context, Server};
use crate::error::Error;
use crate::ots::{OtsError, Receipt, SecretState, SecretString};
use crate::runtime::throttle::{Turn, Wait};
use std::collections::HashSet;

/// Slack around a call's window for the server's clock.
const CLOCK_SLACK_SECS: i64 = 30;

/// What a share call that may have been carried out was.
pub(super) struct Attempt<'a> {
    /// The namespace of the resource it was for (whose turns the search and burn take).
    pub namespace: &'a str,
    /// The server and identity it was sent to.
    pub server: &'a Server,
    /// The lifetime asked for, in seconds.
    pub ttl: u64,
    /// The passphrase it carried.
    pub passphrase: Option<&'a SecretString>,
    /// When it was sent and when it failed (Unix seconds, this machine's clock).
    pub window: (i64, i64),
}

/// Decides what an ambiguous share call leaves behind, and returns the error to report.
///
/// - Anonymous: the server offers no way to find the secret: counted and reported.
/// - Authenticated: the account's recent receipts are searched for one created in the call's
///   window with the same lifetime and passphrase flag whose key nobody knows. None: nothing was
///   stored, the plain error is returned. Exactly one, on an account dedicated to the operator
///   (`--sweep-orphans`): burned, then the plain error (the share is retried). Otherwise the
///   candidates are reported, not burned: on a shared account they may be a person's.
pub(super) async fn after_ambiguous_share(
    ctx: &Context,
    attempt: Attempt<'_>,
    error: OtsError,
) -> Error {
    let client = &attempt.server.client;
    if !client.is_authenticated() {
        ctx.metrics.orphans_possible(1);
        return Error::AmbiguousShare {
            error,
            detail: "the server may have stored the secret without the operator getting its answer; anonymous use offers no way to find it, so it may stay live until it expires (the share is retried with backoff)".into(),
        };
    }
    // Share calls sent before this one failed may still bring their answers: wait for them, so
    // that their keys are known and never taken for this call's orphan.
    ctx.share_calls
        .settled(
            std::time::Instant::now(),
            ctx.config.ots_timeout + std::time::Duration::from_secs(1),
        )
        .await;
    let recent = match ctx
        .throttle
        .call(
            &attempt.server.url,
            "recent",
            Turn::share(attempt.namespace),
            client.recent(),
        )
        .await
    {
        Ok(recent) => recent,
        Err(lookup) => {
            ctx.metrics.orphans_possible(1);
            return Error::AmbiguousShare {
                error,
                detail: format!(
                    "the server may have stored the secret without the operator getting its answer, and its recent receipts could not be read ({lookup}); the share is retried with backoff"
                ),
            };
        }
    };
    let known = ctx.known_metadata_keys();
    let candidates: Vec<&Receipt> = recent
        .iter()
        .filter(|r| is_candidate(r, &attempt, &known))
        .collect();
    match candidates.as_slice() {
        [] => Error::Ots(error),
        [orphan] if ctx.config.sweep_orphans => {
            match super::burn::burn_link(
                ctx,
                attempt.server,
                &orphan.metadata_key,
                attempt.passphrase,
                Turn::share(attempt.namespace),
            )
            .await
            {
                Ok(_) => {
                    ctx.metrics.orphan_burned();
                    tracing::info!(
                        metadata_key_prefix = %prefix(&orphan.metadata_key),
                        "burned the secret a share call without an answer had stored"
                    );
                    Error::Ots(error)
                }
                Err(burn) => {
                    ctx.metrics.orphans_possible(1);
                    Error::AmbiguousShare {
                        error,
                        detail: format!(
                            "the server stored the secret without the operator getting its answer, and burning it failed ({burn}); the share is retried with backoff"
                        ),
                    }
                }
            }
        }
        found => {
            ctx.metrics.orphans_possible(found.len() as u64);
            let why = if found.len() > 1 {
                "more than one matches, so none is burned"
            } else {
                "the account may also be used by people (set --sweep-orphans only for an account dedicated to this operator), so it is not burned"
            };
            Error::AmbiguousShare {
                error,
                detail: format!(
                    "the server may have stored the secret without the operator getting its answer: {} unrecorded receipt(s) of the account match the call; {why}",
                    found.len()
                ),
            }
        }
    }
}

/// Share calls on their way to the server, so that an orphan search can wait for their answers.
#[derive(Default)]
pub struct ShareCalls {
    started: std::sync::Mutex<std::collections::BTreeMap<u64, std::time::Instant>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes a share call from [`ShareCalls`] when it ends, however it ends.
pub struct InFlight<'a> {
    calls: &'a ShareCalls,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut started = self.calls.started.lock().unwrap_or_else(|p| p.into_inner());
        started.remove(&self.id);
    }
}

impl ShareCalls {
    /// Registers a share call as sent until the returned guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.insert(id, std::time::Instant::now());
        InFlight { calls: self, id }
    }

    /// Waits (at most `bound`) until no share call sent before `before` is still on its way.
    pub async fn settled(&self, before: std::time::Instant, bound: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let pending = {
                let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
                started.values().any(|at| *at < before)
            };
            if !pending || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A live receipt that the ambiguous call may have made.
fn is_candidate(receipt: &Receipt, attempt: &Attempt<'_>, known: &KnownKeys) -> bool {
    let (from, to) = attempt.window;
    let in_window = receipt
        .created
        .is_some_and(|c| c >= from - CLOCK_SLACK_SECS && c <= to + CLOCK_SLACK_SECS);
    // v1 clamps a lifetime silently; v2 refuses instead. A clamped one is never longer.
    let same_ttl = receipt.ttl.is_none_or(|t| t <= attempt.ttl);
    let same_gate = receipt
        .passphrase_required
        .is_none_or(|p| p == attempt.passphrase.is_some());
    matches!(receipt.state, SecretState::New)
        && in_window
        && same_ttl
        && same_gate
        && !known.contains(&receipt.metadata_key)
}

/// The metadata keys the operator knows of: by name (statuses, records) or by the digest of a
/// key a server answered lately (see `Context::known_keys`).
pub(super) struct KnownKeys {
    names: HashSet<String>,
    lately: HashSet<u64>,
    digest: std::hash::RandomState,
}

impl KnownKeys {
    /// Keys answered lately, as digests made with `digest`.
    pub(super) fn new(lately: HashSet<u64>, digest: std::hash::RandomState) -> Self {
        Self {
            names: HashSet::new(),
            lately,
            digest,
        }
    }

    /// Adds keys known by name.
    pub(super) fn extend(&mut self, names: impl IntoIterator<Item = String>) {
        self.names.extend(names);
    }

    /// Whether `metadata_key` is known.
    pub(super) fn contains(&self, metadata_key: &str) -> bool {
        use std::hash::BuildHasher;
        self.names.contains(metadata_key)
            || self.lately.contains(&self.digest.hash_one(metadata_key))
    }
}

/// With `--sweep-orphans`: burns every live receipt of the operator's own account (default server
/// and credentials) that no OneTimeShare and no record knows, once it is older than
/// `--sweep-grace`. Passphrase-protected ones cannot be burned without their passphrase and are
/// counted instead.
pub(super) async fn sweep(ctx: &Context) -> Result<(), Error> {
    let Some(server) = ctx.servers.default_authenticated(&Turn::operator()).await? else {
        return Ok(());
    };
    let recent = ctx
        .throttle
        .call(&server.url, "recent", Wait, server.client.recent())
        .await?;
    let mut known = ctx.known_metadata_keys();
    known.extend(ctx.records.metadata_keys().await?);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    for receipt in recent {
        let old_enough = receipt
            .created
            .is_some_and(|c| now - c >= ctx.config.sweep_grace.as_secs() as i64);
        if receipt.state != SecretState::New || !old_enough || known.contains(&receipt.metadata_key)
        {
            continue;
        }
        if receipt.passphrase_required == Some(true) {
            ctx.metrics.orphans_possible(1);
            continue;
        }
        let burned =
            super::burn::burn_link(ctx, &server, &receipt.metadata_key, None, Turn::operator());
        match burned.await {
            Ok(_) => {
                ctx.metrics.orphan_burned();
                tracing::info!(
                    metadata_key_prefix = %prefix(&receipt.metadata_key),
                    "sweep burned a live secret no OneTimeShare recorded"
                );
            }
            Err(e) => tracing::warn!(error = %e, "sweep could not burn an unrecorded secret"),
        }
    }
    Ok(())
}

fn prefix(key: &str) -> String {
    key.chars().take(6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(key: &str, created: i64, ttl: u64, passphrase: Option<bool>) -> Receipt {
        Receipt {
            metadata_key: key.into(),
            secret_key: None,
            state: SecretState::New,
            ttl: Some(ttl),
            secret_ttl: None,
            metadata_ttl: None,
            created: Some(created),
            updated: None,
            received: None,
            first_access: None,
            passphrase_required: passphrase,
            receipt_url: None,
            recipients: Vec::new(),
            share_domain: None,
        }
    }

    #[tokio::test]
    async fn an_orphan_search_waits_for_share_calls_sent_before_it() {
        let calls = std::sync::Arc::new(ShareCalls::default());
        let guard_calls = calls.clone();
        let earlier = tokio::spawn(async move {
            let _guard = guard_calls.enter();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        calls
            .settled(std::time::Instant::now(), std::time::Duration::from_secs(5))
            .await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
        earlier.await.unwrap();
        // A call sent after the search began is not waited for.
        let _later = calls.enter();
        let started = std::time::Instant::now();
        calls
            .settled(
                started - std::time::Duration::from_millis(10),
                std::time::Duration::from_secs(5),
            )
            .await;
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn only_unknown_live_receipts_from_the_calls_window_with_its_lifetime_are_candidates() {
        let server = Server {
            client: crate::ots::OtsClient::new(crate::ots::ClientConfig::new(
                url::Url::parse("http://127.0.0.1:9").unwrap(),
            ))
            .unwrap(),
            url: "http://127.0.0.1:9".into(),
            per_share_credentials: None,
            ca: None,
            share_domain: None,
        };
        let attempt = Attempt {
            namespace: "ns",
            server: &server,
            ttl: 3600,
            passphrase: None,
            window: (1_000, 1_010),
        };
        // "known" from a status or record, "answered" from a share answer not yet written down.
        let digest = std::hash::RandomState::new();
        let lately = [std::hash::BuildHasher::hash_one(&digest, "answered")].into();
        let mut known = KnownKeys::new(lately, digest);
        known.extend(["known".to_owned()]);
        assert!(is_candidate(
            &receipt("a", 1_005, 3600, None),
            &attempt,
            &known
        ));
        assert!(is_candidate(
            &receipt("a", 1_005, 3600, Some(false)),
            &attempt,
            &known
        ));
        assert!(!is_candidate(
            &receipt("known", 1_005, 3600, None),
            &attempt,
            &known
        ));
        assert!(!is_candidate(
            &receipt("answered", 1_005, 3600, None),
            &attempt,
            &known
        ));
        assert!(!is_candidate(
            &receipt("a", 500, 3600, None),
            &attempt,
            &known
        ));
        assert!(!is_candidate(
            &receipt("a", 1_005, 7200, None),
            &attempt,
            &known
        ));
        assert!(!is_candidate(
            &receipt("a", 1_005, 3600, Some(true)),
            &attempt,
            &known
        ));
        let mut received = receipt("a", 1_005, 3600, None);
        received.state = SecretState::Received;
        assert!(!is_candidate(&received, &attempt, &known));
    }
}
