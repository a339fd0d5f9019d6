//! Builds the text that is shared from a Secret's data, and the passphrase from its Secret.
//!
//! Pure functions over bytes, so they are unit- and property-tested without a cluster.

use crate::error::Error;
use crate::ots::SecretString;
use std::collections::BTreeMap;

/// The server's default limit on a secret's size, in bytes (`--ots-max-secret-bytes` overrides
/// it for a server configured otherwise).
pub const MAX_SECRET_BYTES: usize = crate::ots::validate::MAX_SECRET_BYTES;

/// Passphrase length bounds, in characters, that the server enforces.
pub const PASSPHRASE_CHARS: std::ops::RangeInclusive<usize> =
    crate::ots::validate::PASSPHRASE_MIN_CHARS..=crate::ots::validate::PASSPHRASE_MAX_CHARS;

/// Builds the value to share from a Secret's data.
///
/// With `key`, that key's value as is; without, every key in key order, one entry per key,
/// joined by newlines: `KEY=VALUE`, or for a value with a line break a here-document (see
/// [`ALL_KEYS_MARKER`]). The value must be non-empty UTF-8 text of at most 10,000 bytes.
pub fn build_value(
    secret_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    key: Option<&str>,
) -> Result<SecretString, Error> {
    build_value_within(secret_name, data, key, MAX_SECRET_BYTES)
}

/// [`build_value`] for a server that accepts at most `max_bytes`.
pub fn build_value_within(
    secret_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    key: Option<&str>,
    max_bytes: usize,
) -> Result<SecretString, Error> {
    let text = match key {
        Some(key) => {
            let bytes = data.get(key).ok_or_else(|| Error::KeyNotFound {
                name: secret_name.to_owned(),
                key: key.to_owned(),
            })?;
            as_text(secret_name, key, bytes)?.to_owned()
        }
        None => {
            let mut out = String::new();
            for (key, bytes) in data {
                let value = as_text(secret_name, key, bytes)?;
                if !out.is_empty() {
                    out.push('\n');
                }
                push_entry(&mut out, key, value);
                // Stop early: a huge Secret should not be copied whole just to be refused.
                if out.len() > max_bytes {
                    break;
                }
            }
            out
        }
    };
    if text.is_empty() {
        return Err(Error::SecretEmpty {
            name: secret_name.to_owned(),
        });
    }
    if text.len() > max_bytes {
        let bytes = match key {
            Some(_) => text.len(),
            None => all_keys_len(data),
        };
        return Err(Error::SecretTooLarge {
            name: secret_name.to_owned(),
            bytes,
            max: max_bytes,
        });
    }
    Ok(SecretString::from(text))
}

/// Reads a passphrase value: text of 4 to 128 characters.
pub fn build_passphrase(
    secret_name: &str,
    key: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<SecretString, Error> {
    let bytes = data.get(key).ok_or_else(|| Error::PassphraseNotFound {
        name: secret_name.to_owned(),
        key: key.to_owned(),
    })?;
    let invalid = |chars| Error::InvalidPassphrase {
        name: secret_name.to_owned(),
        key: key.to_owned(),
        chars,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(0))?;
    let chars = text.chars().count();
    if !PASSPHRASE_CHARS.contains(&chars) {
        return Err(invalid(chars));
    }
    Ok(SecretString::from(text.to_owned()))
}

fn as_text<'a>(secret_name: &str, key: &str, bytes: &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|_| Error::SecretNotText {
        name: secret_name.to_owned(),
        key: key.to_owned(),
    })
}

/// The here-document marker of a multi-line value in the all-keys form. The recipient reads that
/// form on the server's page: as `KEY=VALUE` lines, a multi-line value (a PEM certificate, a
/// config file) read as if its later lines were keys of their own (a base64 line ending in `=`
/// looks exactly like one) and could not be copied out without cutting `KEY=` off its first line.
/// So such a value is written as a shell here-document: `KEY<<EOF`, the value's lines as they
/// are, `EOF`. The marker gets a number (`EOF1`, `EOF2`, ...) when a line of the value is the
/// marker itself; the value is exactly what lies between the first line and the marker line (a
/// value that ends with a line break shows an empty line before the marker).
pub const ALL_KEYS_MARKER: &str = "EOF";

/// Appends one key of the all-keys form: `KEY=VALUE`, or `KEY<<EOF`, VALUE, `EOF` for a value
/// with a line break.
fn push_entry(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    if !value.contains('\n') {
        out.push('=');
        out.push_str(value);
        return;
    }
    let marker = here_doc_marker(value.as_bytes());
    out.push_str("<<");
    out.push_str(&marker);
    out.push('\n');
    out.push_str(value);
    out.push('\n');
    out.push_str(&marker);
}

/// [`ALL_KEYS_MARKER`], numbered until no line of `value` equals it.
fn here_doc_marker(value: &[u8]) -> String {
    let mut marker = ALL_KEYS_MARKER.to_owned();
    let mut n = 0;
    while value
        .split(|b| *b == b'\n')
        .any(|line| line == marker.as_bytes())
    {
        n += 1;
        marker = format!("{ALL_KEYS_MARKER}{n}");
    }
    marker
}

/// Size of one key's entry in the all-keys form, without building it.
fn entry_len(key: &str, value: &[u8]) -> usize {
    if value.contains(&b'\n') {
        let marker = here_doc_marker(value).len();
        key.len() + 2 + marker + 1 + value.len() + 1 + marker
    } else {
        key.len() + 1 + value.len()
    }
}

/// Size of the all-keys form without building it.
fn all_keys_len(data: &BTreeMap<String, Vec<u8>>) -> usize {
    let entries: usize = data.iter().map(|(k, v)| entry_len(k, v)).sum();
    entries + data.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::ots::ExposeSecret;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn a_single_key_is_shared_raw() {
        let d = data(&[("password", b"s3cr3t\n"), ("user", b"alice")]);
        let v = build_value("db", &d, Some("password")).unwrap();
        assert_eq!(v.expose_secret(), "s3cr3t\n");
    }

    #[test]
    fn all_keys_are_shared_as_sorted_lines() {
        let d = data(&[
            ("user", b"alice"),
            ("password", b"pw"),
            ("host", b"db:5432"),
        ]);
        let v = build_value("db", &d, None).unwrap();
        assert_eq!(v.expose_secret(), "host=db:5432\npassword=pw\nuser=alice");
    }

    #[test]
    fn a_multi_line_value_is_a_here_document_among_the_lines() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBszCC=\n-----END CERTIFICATE-----";
        let d = data(&[
            ("ca.crt", pem.as_bytes()),
            ("host", b"db:5432"),
            ("tail", b"ends-with-newline\n"),
        ]);
        let v = build_value("db", &d, None).unwrap();
        assert_eq!(
            v.expose_secret(),
            "ca.crt<<EOF\n-----BEGIN CERTIFICATE-----\nMIIBszCC=\n-----END CERTIFICATE-----\nEOF\n\
             host=db:5432\n\
             tail<<EOF\nends-with-newline\n\nEOF"
        );
        assert_eq!(v.expose_secret().len(), all_keys_len(&d));
    }

    #[test]
    fn the_marker_is_numbered_past_lines_of_the_value() {
        let d = data(&[("script", b"cat <<EOF\nhi\nEOF\nEOF1")]);
        let v = build_value("s", &d, None).unwrap();
        assert_eq!(
            v.expose_secret(),
            "script<<EOF2\ncat <<EOF\nhi\nEOF\nEOF1\nEOF2"
        );
        assert_eq!(v.expose_secret().len(), all_keys_len(&d));
    }

    #[test]
    fn bad_values_get_their_own_reason() {
        let d = data(&[("a", b""), ("bin", &[0xff, 0xfe]), ("big", &[b'x'; 10_001])]);
        let reason = |key: Option<&str>, d: &BTreeMap<String, Vec<u8>>| {
            build_value("s", d, key).unwrap_err().reason()
        };
        assert_eq!(reason(Some("missing"), &d), Reason::KeyNotFound);
        assert_eq!(reason(Some("a"), &d), Reason::SecretEmpty);
        assert_eq!(reason(Some("bin"), &d), Reason::SecretNotText);
        assert_eq!(reason(Some("big"), &d), Reason::SecretTooLarge);
        assert_eq!(reason(None, &BTreeMap::new()), Reason::SecretEmpty);
        assert_eq!(
            reason(None, &data(&[("big", &[b'x'; 9_999])])),
            Reason::SecretTooLarge
        );
    }

    #[test]
    fn exactly_ten_thousand_bytes_is_accepted() {
        let d = data(&[("k", &[b'x'; 10_000])]);
        assert_eq!(
            build_value("s", &d, Some("k"))
                .unwrap()
                .expose_secret()
                .len(),
            10_000
        );
    }

    #[test]
    fn errors_never_carry_the_value() {
        let d = data(&[("k", b"hunter2-very-secret"), ("b", &[0xc3, 0x28])]);
        let e = build_value("s", &d, None).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }

    #[test]
    fn passphrase_must_be_4_to_128_characters() {
        assert!(build_passphrase("p", "k", &data(&[("k", b"abcd")])).is_ok());
        assert!(build_passphrase("p", "k", &data(&[("k", "é".repeat(128).as_bytes())])).is_ok());
        for bad in [&b"abc"[..], &[b'a'; 129], &[0xff, 0xff, 0xff, 0xff]] {
            let e = build_passphrase("p", "k", &data(&[("k", bad)])).unwrap_err();
            assert_eq!(e.reason(), Reason::InvalidPassphrase);
        }
        let e = build_passphrase("p", "k", &data(&[])).unwrap_err();
        assert_eq!(e.reason(), Reason::PassphraseNotFound);
    }
}
