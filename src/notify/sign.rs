//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so a
//! receiver can check a notification came from this operator and was not replayed late.
//! Spec: <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::jiff::Timestamp;
use ring::hmac;

/// The prefix of a symmetric key in the form Standard Webhooks libraries read.
const KEY_PREFIX: &str = "whsec_";
/// Shortest key the spec allows (192 bits).
const MIN_KEY_BYTES: usize = 24;
/// Longest key the spec allows (512 bits).
const MAX_KEY_BYTES: usize = 64;
/// Header carrying the delivery id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the Unix seconds of the attempt.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// A signing key could not be read. Never quotes the key (not even the offending character).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is not base64 (after an optional `whsec_` prefix).
    #[error("the signing key is not base64 (expected whsec_<base64>)")]
    NotBase64,
    /// The key is shorter or longer than the spec allows.
    #[error("the signing key is {0} bytes; Standard Webhooks keys are 24 to 64 bytes")]
    Length(usize),
}

/// A symmetric signing key (HMAC-SHA256). Its `Debug` never shows the key, and the key bytes
/// are not kept beyond the HMAC key.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Reads a key as `whsec_<base64>` or bare base64 (both are what Standard Webhooks libraries
    /// accept); surrounding whitespace, e.g. a Secret's trailing newline, is ignored.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let text = text.trim();
        let encoded = text.strip_prefix(KEY_PREFIX).unwrap_or(text);
        let bytes = BASE64.decode(encoded).map_err(|_| KeyError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(SigningKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// `v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}")>`.
    fn signature(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", BASE64.encode(ctx.sign().as_ref()))
    }
}

/// The keys a notification is signed with: the current one and, during a rotation, the
/// previous one (both signatures are sent, so receivers on either key accept it).
#[derive(Debug, Clone)]
pub struct Signer {
    current: SigningKey,
    previous: Option<SigningKey>,
}

/// The three Standard Webhooks headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `webhook-id`: the delivery id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds of this attempt.
    pub timestamp: String,
    /// `webhook-signature`: one `v1,<base64>` per key, space-separated.
    pub signature: String,
}

impl SignatureHeaders {
    /// The headers as (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (ID_HEADER, &self.id),
            (TIMESTAMP_HEADER, &self.timestamp),
            (SIGNATURE_HEADER, &self.signature),
        ]
    }
}

impl Signer {
    /// Signs with `current` and, while a rotation is under way, `previous`.
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Signer {
        Signer { current, previous }
    }

    /// The headers for sending `body` with delivery id `id` in an attempt made at `at`.
    pub fn sign(&self, id: &str, at: Timestamp, body: &[u8]) -> SignatureHeaders {
        let timestamp = at.as_second().to_string();
        let signature = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|key| key.signature(id, &timestamp, body))
            .collect::<Vec<_>>()
            .join(" ");
        SignatureHeaders {
            id: id.to_owned(),
            timestamp,
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use standardwebhooks::Webhook;

    const KEY: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const OLD_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"specversion":"1.0","id":"ots_ABC"}"#;

    fn header_map(headers: &SignatureHeaders) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers.pairs() {
            map.insert(name, value.parse().unwrap());
        }
        map
    }

    fn signer() -> Signer {
        Signer::new(SigningKey::parse(KEY).unwrap(), None)
    }

    #[test]
    fn matches_the_spec_example_signature() {
        // The example of Svix' "verifying manually" docs, the reference Standard Webhooks came from.
        let signer = Signer::new(SigningKey::parse(OLD_KEY).unwrap(), None);
        let headers = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            Timestamp::from_second(1_614_265_330).unwrap(),
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(headers.timestamp, "1614265330");
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn an_independent_verifier_accepts_our_signature() {
        let headers = signer().sign("ots_ABC", Timestamp::now(), BODY);
        assert_eq!(headers.id, "ots_ABC");
        Webhook::new(KEY)
            .unwrap()
            .verify(BODY, &header_map(&headers))
            .unwrap();
    }

    #[test]
    fn an_independent_verifier_refuses_a_tampered_body_timestamp_or_id() {
        let headers = signer().sign("ots_ABC", Timestamp::now(), BODY);
        let verifier = Webhook::new(KEY).unwrap();
        assert!(verifier.verify(b"{}", &header_map(&headers)).is_err());

        let mut later = headers.clone();
        later.timestamp = (later.timestamp.parse::<i64>().unwrap() + 1).to_string();
        assert!(verifier.verify(BODY, &header_map(&later)).is_err());

        let mut other_id = headers.clone();
        other_id.id = "ots_ABD".into();
        assert!(verifier.verify(BODY, &header_map(&other_id)).is_err());
    }

    #[test]
    fn an_independent_verifier_refuses_another_key() {
        let headers = signer().sign("ots_ABC", Timestamp::now(), BODY);
        assert!(
            Webhook::new(OLD_KEY)
                .unwrap()
                .verify(BODY, &header_map(&headers))
                .is_err()
        );
    }

    #[test]
    fn a_rotation_sends_both_signatures_and_each_key_verifies() {
        let signer = Signer::new(
            SigningKey::parse(KEY).unwrap(),
            Some(SigningKey::parse(OLD_KEY).unwrap()),
        );
        let headers = signer.sign("ots_ABC", Timestamp::now(), BODY);
        assert_eq!(headers.signature.split(' ').count(), 2);
        assert!(headers.signature.split(' ').all(|s| s.starts_with("v1,")));
        for key in [KEY, OLD_KEY] {
            Webhook::new(key)
                .unwrap()
                .verify(BODY, &header_map(&headers))
                .unwrap();
        }
    }

    #[test]
    fn key_parses_with_or_without_prefix_and_with_a_trailing_newline() {
        let at = Timestamp::from_second(1).unwrap();
        let expected = signer().sign("id", at, BODY);
        for text in [KEY, &KEY[6..], &format!("{KEY}\n")] {
            let signer = Signer::new(SigningKey::parse(text).unwrap(), None);
            assert_eq!(signer.sign("id", at, BODY), expected);
        }
    }

    #[test]
    fn key_must_be_base64_of_24_to_64_bytes() {
        assert_eq!(
            SigningKey::parse("whsec_not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            SigningKey::parse(&BASE64.encode([7u8; 23])).unwrap_err(),
            KeyError::Length(23)
        );
        assert_eq!(
            SigningKey::parse(&BASE64.encode([7u8; 65])).unwrap_err(),
            KeyError::Length(65)
        );
        assert!(SigningKey::parse(&BASE64.encode([7u8; 64])).is_ok());
    }

    #[test]
    fn debug_and_errors_never_show_the_key() {
        let key = SigningKey::parse(KEY).unwrap();
        let signer = Signer::new(key.clone(), Some(key.clone()));
        for text in [
            format!("{key:?}"),
            format!("{signer:?}"),
            format!("{signer:#?}"),
        ] {
            assert!(!text.contains(&KEY[6..12]), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
        // A malformed key: the error names neither the key nor its offending character.
        let bad = "whsec_C2FVsBQIhrscCh-QIMV+b5sSYspob7oD";
        let err = SigningKey::parse(bad).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("C2FV") && !text.contains('-'), "{text}");
        }
    }
}
