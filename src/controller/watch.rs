//! The OneTimeShare watch, with its health reported to `/readyz`.
//!
//! kube's [`watcher`] recovers by itself, but it gives no sign of health: a watch that cannot start
//! (the CRD was deleted, RBAC was taken away) only yields errors, and one that started again yields
//! nothing until an object changes. This wrapper
//! - reports every error and every list or event to a [`WatchHealth`] (which logs transitions and
//!   moves `/readyz`);
//! - waits with capped, jittered backoff after an error, like `.default_backoff()`;
//! - once the watch counts as broken, retries each time with a fresh watcher, which lists first: the
//!   successful list is the sign that it works again, and after a CRD was deleted and re-applied the
//!   list is also the only correct way back (the old resource version means nothing any more).
//!
//! When a CRD is deleted, the API server ends the open watches on it once its short requests in
//! flight have drained (about a second; at most twice the request timeout), so the watch learns of
//! it by itself: the restart is answered 404.

use crate::backoff::Backoff;
use crate::runtime::readiness::WatchHealth;
use futures::stream::{BoxStream, Stream, StreamExt};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use tokio::time::Instant;

/// Backoff between attempts after an error: 1 s doubling to 15 s. A missing CRD costs one list
/// every 15 s at most, and the watch is back within about 15 s of the CRD's return.
const RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(15),
};

/// Whether the API server answered that the resource type does not exist. For a path it does not
/// serve it answers a plain-text "404 page not found", which kube turns into a status with code 404
/// but no reason (so `Status::is_not_found` says no): the code decides.
fn is_not_found(error: &watcher::Error) -> bool {
    let not_found = |status: &kube::core::Status| status.code == 404 || status.is_not_found();
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => {
            matches!(e, kube::Error::Api(status) if not_found(status))
        }
        watcher::Error::WatchError(status) => not_found(status),
        watcher::Error::NoResourceVersion => false,
    }
}

struct State<K: 'static> {
    api: Api<K>,
    config: watcher::Config,
    inner: BoxStream<'static, watcher::Result<Event<K>>>,
    health: WatchHealth,
    /// Errors since the last success, for the backoff.
    attempt: u32,
    /// Do not poll again before this.
    resume_at: Option<Instant>,
    /// Replace the watcher before polling again.
    restart: bool,
}

/// A watcher over `api` that reports to `health`, backs off after errors and lists afresh while
/// broken. Yields what [`watcher`] yields, errors included (callers log or ignore them).
pub(super) fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    health: WatchHealth,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let inner = watcher(api.clone(), config.clone()).boxed();
    let state = State {
        api,
        config,
        inner,
        health,
        attempt: 0,
        resume_at: None,
        restart: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if let Some(at) = s.resume_at.take() {
            tokio::time::sleep_until(at).await;
        }
        if std::mem::take(&mut s.restart) {
            s.inner = watcher(s.api.clone(), s.config.clone()).boxed();
        }
        let item = s.inner.next().await?;
        match &item {
            // Emitted before the list is even sent: no evidence either way.
            Ok(Event::Init) => {}
            Ok(_) => {
                s.health.succeeded();
                s.attempt = 0;
            }
            Err(error) => {
                let broken = s.health.failed(is_not_found(error), error).is_some();
                s.restart = broken;
                s.resume_at = Some(Instant::now() + RETRY.delay(s.attempt));
                s.attempt = s.attempt.saturating_add(1);
                tracing::debug!(%error, attempt = s.attempt, "OneTimeShare watch error");
            }
        }
        Some((item, s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    /// An error as kube reports an answer that is not a JSON status (the API server's answer for a
    /// resource type it does not serve).
    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure("404 page not found", "Failed to parse error data").with_code(code),
        ))
    }

    #[test]
    fn only_a_404_from_the_api_server_means_the_type_is_missing() {
        assert!(is_not_found(&watcher::Error::WatchStartFailed(api_error(
            404
        ))));
        assert!(is_not_found(&watcher::Error::InitialListFailed(api_error(
            404
        ))));
        assert!(!is_not_found(&watcher::Error::InitialListFailed(
            api_error(403)
        )));
        assert!(!is_not_found(&watcher::Error::NoResourceVersion));
    }
}
