//! HTTP Basic authentication against the configured accounts.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::config::Account;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// Valid credentials of this account (email).
    Account(String),
    /// An `Authorization` header that is not valid Basic credentials of a known account.
    BadCredentials,
}

impl Caller {
    /// The account email, for authenticated callers.
    pub(crate) fn email(&self) -> Option<&str> {
        match self {
            Caller::Account(email) => Some(email),
            _ => None,
        }
    }
}

/// Identifies the caller from the `Authorization` header.
pub(crate) fn identify(headers: &HeaderMap, accounts: &[Account]) -> Caller {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Caller::Anonymous;
    };
    let Some((user, token)) = value.to_str().ok().and_then(decode_basic) else {
        return Caller::BadCredentials;
    };
    if user.is_empty() || token.is_empty() {
        return Caller::BadCredentials;
    }
    // Check every account so the time taken does not tell which emails exist.
    let mut found = None;
    for account in accounts {
        let email_ok = account.email.eq_ignore_ascii_case(&user);
        let token_ok = bool::from(account.token.as_bytes().ct_eq(token.as_bytes()));
        if email_ok && token_ok {
            found = Some(account.email.clone());
        }
    }
    found.map_or(Caller::BadCredentials, Caller::Account)
}

/// Why the current server's Basic strategy refuses a request, as `failure_reason` strings of
/// `lib/onetime/application/auth_strategies/basic_auth_strategy.rb:109,134-145` (de53ff8f7).
/// Ruby's `split(':', 2)` drops an empty password, so `user:` is a format error.
pub(crate) fn failure_reason(headers: &HeaderMap) -> &'static str {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return "[AUTH_HEADER_MISSING] No authorization header";
    };
    let Some(encoded) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) else {
        return "[AUTH_TYPE_INVALID] Invalid authorization type";
    };
    let decoded = base64_decode(encoded.trim())
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .unwrap_or_default();
    match decoded.split_once(':') {
        Some((_, pass)) if !pass.is_empty() => "[CREDENTIALS_INVALID] Invalid credentials",
        _ => "[CREDENTIALS_FORMAT_INVALID] Invalid credentials format",
    }
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(encoded.trim())?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Standard base64 with optional padding.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn failure_reasons_follow_the_basic_strategy() {
        assert_eq!(
            failure_reason(&HeaderMap::new()),
            "[AUTH_HEADER_MISSING] No authorization header"
        );
        assert_eq!(
            failure_reason(&headers("Bearer x")),
            "[AUTH_TYPE_INVALID] Invalid authorization type"
        );
        // "a@example.com:" and "nocolon"
        for v in ["Basic YUBleGFtcGxlLmNvbTo=", "Basic bm9jb2xvbg=="] {
            assert_eq!(
                failure_reason(&headers(v)),
                "[CREDENTIALS_FORMAT_INVALID] Invalid credentials format",
                "{v}"
            );
        }
        // "a@example.com:bad"
        assert_eq!(
            failure_reason(&headers("Basic YUBleGFtcGxlLmNvbTpiYWQ=")),
            "[CREDENTIALS_INVALID] Invalid credentials"
        );
    }

    #[test]
    fn basic_credentials_of_a_known_account_identify_it() {
        let accounts = vec![Account::new("a@example.com", "tok")];
        // "a@example.com:tok"
        let h = headers("Basic YUBleGFtcGxlLmNvbTp0b2s=");
        assert_eq!(
            identify(&h, &accounts),
            Caller::Account("a@example.com".into())
        );
    }

    #[test]
    fn wrong_empty_or_non_basic_credentials_are_bad() {
        let accounts = vec![Account::new("a@example.com", "tok")];
        // "a@example.com:bad", ":", bearer
        for v in [
            "Basic YUBleGFtcGxlLmNvbTpiYWQ=",
            "Basic Og==",
            "Bearer x",
            "Basic !!",
        ] {
            assert_eq!(
                identify(&headers(v), &accounts),
                Caller::BadCredentials,
                "{v}"
            );
        }
        assert_eq!(identify(&HeaderMap::new(), &accounts), Caller::Anonymous);
    }
}
