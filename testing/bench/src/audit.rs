//! Counts the operator's apiserver requests from the audit log (Metadata level, JSON lines).

use crate::BenchError;
use crate::cluster::OPERATOR_USER;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Requests per `verb resource[/subresource]`.
pub type Counts = BTreeMap<String, u64>;

/// The operator's requests logged between two marks (byte offsets of the log). A watch counts
/// once, when it starts.
pub fn operator_requests(log: &Path, from: u64, to: u64) -> Result<Counts, BenchError> {
    let mut file = std::fs::File::open(log)?;
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.take(to.saturating_sub(from))
        .read_to_string(&mut text)?;
    let mut counts = Counts::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let user = event
            .pointer("/impersonatedUser/username")
            .and_then(|v| v.as_str());
        if user != Some(OPERATOR_USER) {
            continue;
        }
        let verb = event.get("verb").and_then(|v| v.as_str()).unwrap_or("?");
        let stage = event.get("stage").and_then(|v| v.as_str()).unwrap_or("");
        let counted = match verb {
            "watch" => stage == "ResponseStarted",
            _ => stage == "ResponseComplete",
        };
        if !counted {
            continue;
        }
        let resource = event
            .pointer("/objectRef/resource")
            .and_then(|v| v.as_str())
            .unwrap_or("(none)");
        let key = match event
            .pointer("/objectRef/subresource")
            .and_then(|v| v.as_str())
        {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        };
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}

/// Sum of the counts whose key satisfies `pick`.
pub fn sum(counts: &Counts, pick: impl Fn(&str) -> bool) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| pick(k))
        .map(|(_, n)| *n)
        .sum()
}
