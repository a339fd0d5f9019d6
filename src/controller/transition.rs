//! A share's transitions (a new link, its end, a failure), told in one shape: one structured
//! info log line each, the audit trail for log pipelines; notifications will carry the same
//! fields. Built in one place, [`Transition::of`], from the resource and its new status, so
//! nothing else can slip in: namespace, name, uid, phase, reason, times and the server's URL,
//! never the link, the metadata key, the value or the passphrase.

use crate::error::Reason;
use crate::resource::{OneTimeShare, OneTimeShareStatus, PastLink, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

/// The `target` of every transition log line, for log pipelines to select them by.
pub const LOG_TARGET: &str = "ots_operator::transition";

/// What happened to a share, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Namespace of the OneTimeShare.
    pub namespace: String,
    /// Name of the OneTimeShare.
    pub name: String,
    /// uid of the OneTimeShare (a re-created share of the same name has another).
    pub uid: String,
    /// The share's phase after the transition.
    pub phase: Phase,
    /// Why: Shared, Reshared or Renewed (a new link), Received, Burned or Expired (its end), or
    /// the reason of a failure.
    #[serde(serialize_with = "reason_word")]
    pub reason: Reason,
    /// When the transition happened (as the operator saw it).
    pub at: Time,
    /// The resource is being deleted: this is its last transition.
    pub deleted: bool,
    /// When the current link was shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_at: Option<Time>,
    /// When the current link stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the current link was received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Time>,
    /// When the current link was burned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burned_at: Option<Time>,
    /// When the current link expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Time>,
    /// The link that ended with this transition: the current one (Received, Burned, Expired),
    /// or the one a new link replaced (Reshared; how it ended, when it was already gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<PastLink>,
    /// The base URL of the server that holds (held) the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
}

/// The reason of a phase a link ends in (Received, Burned, Expired); Shared for the others.
pub fn end_reason(phase: Phase) -> Reason {
    match phase {
        Phase::Received => Reason::Received,
        Phase::Burned => Reason::Burned,
        Phase::Expired => Reason::Expired,
        Phase::Pending | Phase::Shared | Phase::Failed => Reason::Shared,
    }
}

fn reason_word<S: serde::Serializer>(reason: &Reason, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(reason.as_str())
}

impl Transition {
    /// The transition of `obj` from status `before` to `status`, for `reason`, at `at`. The
    /// link that ended with it is the entry `status.history` gained, if any.
    pub fn of(
        obj: &OneTimeShare,
        before: &OneTimeShareStatus,
        status: &OneTimeShareStatus,
        reason: Reason,
        at: Timestamp,
    ) -> Transition {
        let ended = status
            .history
            .last()
            .filter(|last| before.history.last() != Some(*last))
            .cloned();
        Transition {
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            uid: obj.uid().unwrap_or_default(),
            phase: status.phase,
            reason,
            at: Time(at),
            deleted: obj.metadata.deletion_timestamp.is_some(),
            shared_at: status.shared_at.clone(),
            expires_at: status.expires_at.clone(),
            received_at: status.received_at.clone(),
            burned_at: status.burned_at.clone(),
            expired_at: status.expired_at.clone(),
            ended,
            server_url: status.server_url.clone(),
        }
    }

    /// Writes the transition as one info line with target [`LOG_TARGET`]; times are RFC 3339,
    /// absent ones are left out.
    pub fn log(&self) {
        let time = |t: &Option<Time>| t.as_ref().map(|t| t.0.to_string());
        let ended = self.ended.as_ref();
        tracing::info!(
            target: LOG_TARGET,
            namespace = %self.namespace,
            name = %self.name,
            uid = %self.uid,
            phase = self.phase.as_str(),
            reason = self.reason.as_str(),
            at = %self.at.0,
            deleted = self.deleted,
            shared_at = time(&self.shared_at).as_deref(),
            expires_at = time(&self.expires_at).as_deref(),
            received_at = time(&self.received_at).as_deref(),
            burned_at = time(&self.burned_at).as_deref(),
            expired_at = time(&self.expired_at).as_deref(),
            ended = ended.map(|e| e.ended.as_str()),
            ended_link_shared_at = ended.map(|e| e.shared_at.0.to_string()).as_deref(),
            ended_at = ended.map(|e| e.ended_at.0.to_string()).as_deref(),
            server_url = self.server_url.as_deref(),
            "share transition"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::LinkEnd;

    const LINK: &str = "https://ots.example/secret/linkKEYabcdefghijklmnop";
    const METADATA_KEY: &str = "metaKEYqrstuvwxyz0123456789";
    const RECEIPT: &str = "https://ots.example/receipt/metaKEYqrstuvwxyz0123456789";

    fn time(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn received() -> (OneTimeShare, OneTimeShareStatus) {
        let mut obj = OneTimeShare::new(
            "handoff",
            serde_json::from_value(serde_json::json!({"secretRef": {"name": "db"}})).unwrap(),
        );
        obj.metadata.namespace = Some("team".into());
        obj.metadata.uid = Some("uid-1".into());
        let ended = PastLink {
            shared_at: time(1_000),
            ended: LinkEnd::Received,
            ended_at: time(1_500),
        };
        let status = OneTimeShareStatus {
            phase: Phase::Received,
            link: Some(LINK.into()),
            metadata_key: Some(METADATA_KEY.into()),
            metadata_link: Some(RECEIPT.into()),
            server_url: Some("https://ots.example".into()),
            shared_at: Some(time(1_000)),
            expires_at: Some(time(4_600)),
            received_at: Some(time(1_500)),
            history: vec![ended],
            ..Default::default()
        };
        (obj, status)
    }

    #[test]
    fn a_transition_carries_names_phase_reason_times_and_server_but_no_capability() {
        let (obj, status) = received();
        let before = OneTimeShareStatus {
            phase: Phase::Shared,
            history: Vec::new(),
            ..status.clone()
        };
        let transition = Transition::of(&obj, &before, &status, Reason::Received, time(1_600).0);
        let json = serde_json::to_value(&transition).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "namespace": "team", "name": "handoff", "uid": "uid-1",
                "phase": "Received", "reason": "Received",
                "at": "1970-01-01T00:26:40Z", "deleted": false,
                "sharedAt": "1970-01-01T00:16:40Z", "expiresAt": "1970-01-01T01:16:40Z",
                "receivedAt": "1970-01-01T00:25:00Z",
                "ended": {"sharedAt": "1970-01-01T00:16:40Z", "ended": "Received",
                          "endedAt": "1970-01-01T00:25:00Z"},
                "serverUrl": "https://ots.example",
            })
        );
        let shown = format!("{json} {transition:?}");
        for capability in [LINK, METADATA_KEY, RECEIPT, "linkKEY", "metaKEY"] {
            assert!(!shown.contains(capability), "{capability} in {shown}");
        }
    }

    #[test]
    fn only_an_entry_the_history_gained_is_the_transitions_end() {
        let (obj, status) = received();
        // Burned after it was received (a burn on request finds nothing): no link ends.
        let burned = OneTimeShareStatus {
            phase: Phase::Burned,
            ..status.clone()
        };
        let transition = Transition::of(&obj, &status, &burned, Reason::Burned, time(1_700).0);
        assert_eq!(transition.ended, None);
        assert_eq!(transition.phase, Phase::Burned);
    }
}
