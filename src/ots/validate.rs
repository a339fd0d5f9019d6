//! Client-side checks made before any request, mirroring the server's own limits.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::error::InputError;

/// Largest secret the server accepts by default, in bytes (since v0.24.3; v2's
/// `SECRET_MAX_LENGTH` can change it per server, so this is only the default of the pre-check).
pub const MAX_SECRET_BYTES: usize = 10_000;
/// Shortest accepted passphrase, in characters.
pub const PASSPHRASE_MIN_CHARS: usize = 4;
/// Longest accepted passphrase, in characters.
pub const PASSPHRASE_MAX_CHARS: usize = 128;
/// Shortest lifetime the server grants, in seconds (shorter ones are silently raised by it).
pub const MIN_TTL_SECS: u64 = 60;

/// Checks that a secret is non-empty and at most `max` bytes (a server's own limit, by default
/// [`MAX_SECRET_BYTES`]).
pub fn secret_within(value: &SecretString, max: usize) -> Result<(), InputError> {
    let bytes = value.expose_secret().len();
    if bytes == 0 {
        return Err(InputError::Empty);
    }
    if bytes > max {
        return Err(InputError::TooLarge { bytes, max });
    }
    Ok(())
}

/// Checks that a passphrase has 4 to 128 characters.
pub fn passphrase(value: &SecretString) -> Result<(), InputError> {
    let chars = value.expose_secret().chars().count();
    if (PASSPHRASE_MIN_CHARS..=PASSPHRASE_MAX_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(InputError::PassphraseLength { chars })
    }
}

/// Checks a share's options (passphrase, then lifetime) and returns the lifetime in seconds.
pub fn options(
    passphrase: Option<&SecretString>,
    ttl: Option<Duration>,
) -> Result<Option<u64>, InputError> {
    if let Some(passphrase) = passphrase {
        self::passphrase(passphrase)?;
    }
    ttl.map(self::ttl).transpose()
}

/// Checks that a lifetime is at least [`MIN_TTL_SECS`] and returns it in whole seconds.
pub fn ttl(value: Duration) -> Result<u64, InputError> {
    let secs = value.as_secs();
    if secs < MIN_TTL_SECS {
        return Err(InputError::TtlTooShort { secs });
    }
    Ok(secs)
}

/// Checks that a key can go into a URL path: non-empty ASCII letters and digits only.
///
/// Keys are otherwise opaque and of variable length (62 characters today, 31 on old servers).
pub fn key(value: &str) -> Result<(), InputError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(InputError::InvalidKey)
    }
}

/// The first characters of a key, enough to correlate log lines without handing out the key.
pub fn key_prefix(value: &str) -> &str {
    let end = value
        .char_indices()
        .nth(6)
        .map_or(value.len(), |(index, _)| index);
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(value: &str) -> SecretString {
        SecretString::from(value)
    }

    /// The check with the default limit.
    fn secret(value: &SecretString) -> Result<(), InputError> {
        secret_within(value, MAX_SECRET_BYTES)
    }

    #[test]
    fn empty_secret_is_rejected() {
        assert_eq!(secret(&s("")), Err(InputError::Empty));
    }

    #[test]
    fn secret_of_exactly_ten_thousand_bytes_is_accepted_and_one_more_is_not() {
        assert_eq!(secret(&s(&"a".repeat(10_000))), Ok(()));
        assert_eq!(
            secret(&s(&"a".repeat(10_001))),
            Err(InputError::TooLarge {
                bytes: 10_001,
                max: 10_000
            })
        );
    }

    #[test]
    fn a_server_with_a_larger_limit_takes_larger_secrets() {
        assert_eq!(secret_within(&s(&"a".repeat(50_000)), 100_000), Ok(()));
        assert_eq!(
            secret_within(&s(&"a".repeat(11)), 10),
            Err(InputError::TooLarge { bytes: 11, max: 10 })
        );
    }

    #[test]
    fn secret_size_counts_bytes_not_characters() {
        // 5,000 two-byte characters are 10,000 bytes; one more is too many.
        assert_eq!(secret(&s(&"é".repeat(5_000))), Ok(()));
        assert_eq!(
            secret(&s(&"é".repeat(5_001))),
            Err(InputError::TooLarge {
                bytes: 10_002,
                max: 10_000
            })
        );
    }

    #[test]
    fn passphrase_length_bounds_are_four_and_128_characters() {
        assert_eq!(
            passphrase(&s("abc")),
            Err(InputError::PassphraseLength { chars: 3 })
        );
        assert_eq!(passphrase(&s("abcd")), Ok(()));
        assert_eq!(passphrase(&s(&"x".repeat(128))), Ok(()));
        assert_eq!(
            passphrase(&s(&"x".repeat(129))),
            Err(InputError::PassphraseLength { chars: 129 })
        );
        assert_eq!(
            passphrase(&s("")),
            Err(InputError::PassphraseLength { chars: 0 })
        );
    }

    #[test]
    fn passphrase_length_counts_characters_not_bytes() {
        assert_eq!(
            passphrase(&s("ééé")),
            Err(InputError::PassphraseLength { chars: 3 })
        );
        assert_eq!(passphrase(&s("éééé")), Ok(()));
    }

    #[test]
    fn ttl_under_sixty_seconds_is_rejected() {
        assert_eq!(
            ttl(Duration::from_secs(59)),
            Err(InputError::TtlTooShort { secs: 59 })
        );
        assert_eq!(
            ttl(Duration::from_millis(59_999)),
            Err(InputError::TtlTooShort { secs: 59 })
        );
        assert_eq!(ttl(Duration::from_secs(60)), Ok(60));
        assert_eq!(ttl(Duration::from_secs(86_400)), Ok(86_400));
    }

    #[test]
    fn keys_must_be_nonempty_ascii_alphanumerics_of_any_length() {
        assert_eq!(key("abc123XYZ"), Ok(()));
        assert_eq!(key(&"a".repeat(62)), Ok(()));
        assert_eq!(key(&"b".repeat(31)), Ok(()));
        for bad in [
            "",
            "../status",
            "abc/def",
            "abc def",
            "abc?x=1",
            "abc%2F",
            "ключ",
            "a-b",
        ] {
            assert_eq!(key(bad), Err(InputError::InvalidKey), "{bad:?}");
        }
    }

    #[test]
    fn key_prefix_is_at_most_six_characters() {
        assert_eq!(key_prefix("abcdefghijkl"), "abcdef");
        assert_eq!(key_prefix("abc"), "abc");
        assert_eq!(key_prefix("ééééééé"), "éééééé");
    }
}
