//! Lenient reading of response fields.
//!
//! Bodies are parsed into `serde_json::Value` and read field by field instead of being
//! deserialized into structs: servers differ (v2 sends numbers as numbers, floats or strings), and
//! serde's typed errors quote the offending value, which could be a secret. Errors built here name
//! the field only.

use serde_json::{Map, Value};

use super::error::OtsError;
use super::http::Op;
use super::types::{ResolvedApi, ServerStatus};

/// A JSON object.
pub type Object = Map<String, Value>;

/// The protocol error for an answer that lacks a required field.
pub fn missing(op: Op, field: &str) -> OtsError {
    OtsError::Protocol {
        detail: format!("{op}: the answer has no `{field}`"),
    }
}

/// Reads a status answer; v1 (`{"status","locale"}`) and v2 (`{"success","status","locale"}`)
/// share the fields that matter.
pub fn server_status(op: Op, value: &Value, api: ResolvedApi) -> Result<ServerStatus, OtsError> {
    let obj = object(op.as_str(), "the status answer", value)?;
    Ok(ServerStatus {
        status: string(obj, &["status"]).ok_or_else(|| missing(op, "status"))?,
        locale: string(obj, &["locale"]),
        api,
    })
}

/// Parses a body as JSON; the error names the operation, never the content.
pub fn parse(op: &str, body: &[u8]) -> Result<Value, OtsError> {
    // Only the error's category is reported: nothing from the input can leak into the message.
    serde_json::from_slice(body).map_err(|err| OtsError::Protocol {
        detail: format!("{op}: response is not JSON ({})", category(&err)),
    })
}

fn category(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "data error",
        serde_json::error::Category::Eof => "truncated",
    }
}

/// The value as an object, or a protocol error saying what was expected.
pub fn object<'a>(op: &str, what: &str, value: &'a Value) -> Result<&'a Object, OtsError> {
    value.as_object().ok_or_else(|| OtsError::Protocol {
        detail: format!("{op}: expected {what} to be a JSON object"),
    })
}

/// Mutable variant of [`object`].
pub fn object_mut<'a>(
    op: &str,
    what: &str,
    value: &'a mut Value,
) -> Result<&'a mut Object, OtsError> {
    value.as_object_mut().ok_or_else(|| OtsError::Protocol {
        detail: format!("{op}: expected {what} to be a JSON object"),
    })
}

/// A non-empty string field, from the first of `names` that holds one.
pub fn string(obj: &Object, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match obj.get(*name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    })
}

/// An unsigned integer field (number, float or numeric string), from the first of `names`.
pub fn u64_field(obj: &Object, names: &[&str]) -> Option<u64> {
    names
        .iter()
        .find_map(|name| obj.get(*name).and_then(as_i64))
        .and_then(|n| u64::try_from(n).ok())
}

/// A signed integer field (number, float or numeric string), from the first of `names`.
pub fn i64_field(obj: &Object, names: &[&str]) -> Option<i64> {
    names
        .iter()
        .find_map(|name| obj.get(*name).and_then(as_i64))
}

/// A boolean field (`true`/`false` or the strings `"true"`/`"false"`), from the first of `names`.
pub fn bool_field(obj: &Object, names: &[&str]) -> Option<bool> {
    names.iter().find_map(|name| match obj.get(*name) {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        _ => None,
    })
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok()))
            .or_else(|| n.as_f64().and_then(float_to_i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float_to_i64))
        }
        _ => None,
    }
}

fn float_to_i64(f: f64) -> Option<i64> {
    // Timestamps arrive as float seconds on v2; anything outside i64 is garbage, not a time.
    (f.is_finite() && f.abs() < 9.0e18).then(|| f.trunc() as i64)
}

/// Strings from an array field or a comma-separated string field, from the first of `names`.
pub fn strings(obj: &Object, names: &[&str]) -> Vec<String> {
    for name in names {
        match obj.get(*name) {
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(|item| item.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            // v2 sends its recipients as one comma-separated string.
            Some(Value::String(s)) if !s.is_empty() => {
                return s
                    .split(',')
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Vec::new()
}

/// Removes a string field and returns it without copying (used for secret values).
pub fn take_string(obj: &mut Object, name: &str) -> Option<String> {
    match obj.get_mut(name) {
        Some(Value::String(s)) => Some(std::mem::take(s)),
        _ => None,
    }
}

/// Texts the real server sends in error answers (onetimesecret/onetimesecret at de53ff8f7 and
/// tags v0.20.5, v0.23.6). `{n}` stands for a number, `{w}` for lower-case words, `{email}` for an
/// email address and `{domain}` for a host name. Only these texts are ever kept from a server:
/// anything else is untrusted free text that could echo the request (and so the secret).
const KNOWN_MESSAGES: &[&str] = &[
    // v1 and v2 validation (`apps/api/v1/logic/secrets/base_secret_action.rb`,
    // `apps/api/v2/logic/secrets/*.rb`, `lib/onetime/logic/base.rb:192`).
    "You did not provide anything to share",
    "Secret value exceeds the maximum size of {n} bytes",
    "Secret content must be no more than {n} bytes long",
    "Passphrase must be at least {n} characters long",
    "Passphrase must be no more than {n} characters long",
    "Passphrase must contain at least one {w}",
    "A passphrase is required for all secrets",
    "Generated password length must be no more than {n} characters",
    "An account is required to send emails.",
    "Undeliverable email address: {email}",
    "Incorrect passphrase",
    // A burn with a wrong passphrase: `web.COMMON.error_passphrase` of the compiled English
    // locale (v1 and v2 `burn_secret.rb`; the genuine server answers it, real_ots_differential).
    "Double check that passphrase",
    "Unknown type of secret",
    "Incorrect payload format",
    "Could not store your secret",
    "Unknown domain: {domain}",
    "Custom domain is not verified: {domain}",
    // Share domains the caller may not use (`base_secret_action.rb:384,692,717`, de53ff8f7).
    "You do not have permission to use domain: {domain}",
    "Public sharing disabled for domain: {domain}",
    // Not found and credentials.
    "Unknown secret",
    "Not Found",
    "Not authorized",
    // Guest routes and entitlements (`lib/onetime/errors.rb`, `guest_route_gating.rb`).
    "Guest API access is disabled",
    "Guest {w} is disabled",
    "Feature requires {w} entitlement",
    // Rate limits, every era's wording.
    "Rate limit exceeded",
    "Rate limit exceeded. Please try again later.",
    "Cripes! You have been rate limited.",
    "Apologies dear citizen! You have been rate limited.",
    // v0.21–v0.23 refusals (`apps/api/v2/controllers/{secrets,base}.rb`) and failures
    // (`apps/api/v2/controllers/helpers.rb:105-144`).
    "Secret could not be concealed.",
    "Secret could not be generated.",
    "Secret could not be burned.",
    "Action could not be completed",
    "An unexpected error occurred :[",
    "An error occurred :[",
    "We'll be back shortly!",
    "We're sorry, but we can't process your request at this time.",
];

/// The server's message when it is one of the real server's known texts, else `None`.
pub fn known_message(message: &str) -> Option<String> {
    let message = message.trim();
    KNOWN_MESSAGES
        .iter()
        .any(|pattern| matches_pattern(pattern, message))
        .then(|| clean_message(message))
}

/// A placeholder of [`KNOWN_MESSAGES`]: its name, the characters it stands for, its longest length.
type Placeholder = (&'static str, fn(char) -> bool, usize);

fn matches_pattern(pattern: &str, text: &str) -> bool {
    const CLASSES: [Placeholder; 4] = [
        ("{n}", |c| c.is_ascii_digit(), 12),
        (
            "{w}",
            |c| c.is_ascii_lowercase() || c == ' ' || c == ',',
            80,
        ),
        (
            "{email}",
            |c| c.is_ascii_alphanumeric() || "@.+_-".contains(c),
            254,
        ),
        (
            "{domain}",
            |c| c.is_ascii_alphanumeric() || ".-".contains(c),
            253,
        ),
    ];
    for (placeholder, allowed, max) in CLASSES {
        if let Some((prefix, suffix)) = pattern.split_once(placeholder) {
            return text
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|middle| {
                    !middle.is_empty() && middle.len() <= max && middle.chars().all(allowed)
                });
        }
    }
    pattern == text
}

/// A server's `error_type` word, kept only when it looks like one (ASCII letters, digits and
/// `_`, at most 40 characters).
pub fn error_type(obj: Option<&Object>) -> Option<String> {
    obj.and_then(|o| string(o, &["error_type"])).filter(|word| {
        word.len() <= 40 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// What an error may say about an answer whose text is not a known one: the HTTP status and
/// the `error_type`, nothing the server wrote freely.
pub fn status_words(status: u16, error_type: Option<&str>) -> String {
    match error_type {
        Some(kind) => format!("HTTP {status} ({kind})"),
        None => format!("HTTP {status}"),
    }
}

/// Shortens a server message for errors and logs, dropping control characters.
pub fn clean_message(message: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect();
    if message.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Object {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn numbers_are_read_from_ints_floats_and_strings() {
        let o = obj(
            json!({"a": 5, "b": 1767225600.75, "c": "42", "d": "7.9", "e": -3, "f": "x", "g": null}),
        );
        assert_eq!(u64_field(&o, &["a"]), Some(5));
        assert_eq!(i64_field(&o, &["b"]), Some(1_767_225_600));
        assert_eq!(u64_field(&o, &["c"]), Some(42));
        assert_eq!(u64_field(&o, &["d"]), Some(7));
        assert_eq!(u64_field(&o, &["e"]), None);
        assert_eq!(i64_field(&o, &["e"]), Some(-3));
        assert_eq!(u64_field(&o, &["f"]), None);
        assert_eq!(u64_field(&o, &["g", "a"]), Some(5));
        assert_eq!(u64_field(&o, &["missing"]), None);
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let o = obj(json!({"secret_key": "", "secret_identifier": "abc"}));
        assert_eq!(string(&o, &["secret_key"]), None);
        assert_eq!(
            string(&o, &["secret_key", "secret_identifier"]),
            Some("abc".into())
        );
    }

    #[test]
    fn booleans_accept_string_encoding() {
        let o = obj(json!({"a": true, "b": "false", "c": 1}));
        assert_eq!(bool_field(&o, &["a"]), Some(true));
        assert_eq!(bool_field(&o, &["b"]), Some(false));
        assert_eq!(bool_field(&o, &["c"]), None);
    }

    #[test]
    fn string_lists_accept_arrays_and_single_strings() {
        let o = obj(json!({"a": ["x@e.com", "", 3], "b": "y@e.com, z@e.com", "c": ""}));
        assert_eq!(strings(&o, &["a"]), vec!["x@e.com".to_string()]);
        assert_eq!(
            strings(&o, &["b"]),
            vec!["y@e.com".to_string(), "z@e.com".to_string()]
        );
        assert!(strings(&o, &["c"]).is_empty());
    }

    #[test]
    fn parse_errors_never_quote_the_body() {
        let err = parse("reveal", br#"{"value": "hunter2-secret" oops"#).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(matches!(err, OtsError::Protocol { .. }));
    }

    #[test]
    fn only_the_real_servers_texts_are_known() {
        for known in [
            "You did not provide anything to share",
            "Secret content must be no more than 20000 bytes long",
            "Passphrase must be at least 8 characters long",
            "Passphrase must contain at least one uppercase letter, number",
            "Undeliverable email address: not-an-email",
            "Secret could not be burned.",
            "Double check that passphrase",
            "Guest conceal is disabled",
            "Feature requires extended default expiration entitlement",
        ] {
            assert_eq!(known_message(known).as_deref(), Some(known), "{known}");
        }
        for unknown in [
            "Unknown type of secret hunter2",
            "Secret content must be no more than hunter2 bytes long",
            "Undeliverable email address: a b=c",
            "Passphrase must be at least 8 characters long; you sent hunter2",
            "",
            "Guest  is disabled",
        ] {
            assert_eq!(known_message(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn error_types_must_look_like_words() {
        let o = obj(json!({"error_type": "EntitlementRequired"}));
        assert_eq!(error_type(Some(&o)).as_deref(), Some("EntitlementRequired"));
        let o = obj(json!({"error_type": "x y=secret"}));
        assert_eq!(error_type(Some(&o)), None);
        assert_eq!(status_words(422, Some("FormError")), "HTTP 422 (FormError)");
        assert_eq!(status_words(500, None), "HTTP 500");
    }

    #[test]
    fn messages_are_truncated_and_cleaned() {
        assert_eq!(clean_message("a\nb\u{7}c"), "abc");
        let long = "x".repeat(500);
        assert_eq!(clean_message(&long).chars().count(), 201);
    }
}
