//! Key generation: 62 base-36 characters (v0.24+) or 31 (legacy, v0.23 and earlier).

use rand::RngCore;

/// Length of a current key: 256 random bits plus a 64-bit tag, base 36, zero-padded.
pub const KEY_LEN: usize = 62;
/// Length of a legacy key (v0.23 and earlier).
pub const LEGACY_KEY_LEN: usize = 31;
/// Length of `secret_shortkey` (v0.24+).
pub const SHORTKEY_LEN: usize = 8;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A fresh random key of `[0-9a-z]`, 62 characters, or 31 with `legacy`.
pub(crate) fn new_key(legacy: bool) -> String {
    let (bytes, len) = if legacy {
        (20, LEGACY_KEY_LEN)
    } else {
        (40, KEY_LEN)
    };
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base36(&buf, len)
}

/// A request id as the genuine server's Rack::RequestId makes them: 13 base-36 characters.
pub(crate) fn request_id() -> String {
    let mut buf = [0u8; 9];
    rand::rng().fill_bytes(&mut buf);
    base36(&buf, 13).chars().take(13).collect()
}

/// An account's objid, in the UUID form the genuine server gives its customers
/// (`owner_id`, recent's `custid`), derived from the email so it is stable.
pub(crate) fn objid(email: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, email).hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Big-endian bytes as a base-36 number, left-padded with zeros to `len` digits.
fn base36(bytes: &[u8], len: usize) -> String {
    let mut num = bytes.to_vec();
    let mut digits = Vec::with_capacity(len);
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    while digits.len() < len {
        digits.push(b'0');
    }
    digits.truncate(len);
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// The first 8 characters of a secret key, shown in burn answers.
pub(crate) fn shortkey(key: &str) -> String {
    key.chars().take(SHORTKEY_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_62_lowercase_base36_characters() {
        for _ in 0..200 {
            let k = new_key(false);
            assert_eq!(k.len(), KEY_LEN);
            assert!(k.bytes().all(|b| ALPHABET.contains(&b)), "{k}");
        }
    }

    #[test]
    fn legacy_keys_are_31_characters() {
        for _ in 0..200 {
            let k = new_key(true);
            assert_eq!(k.len(), LEGACY_KEY_LEN);
            assert!(k.bytes().all(|b| ALPHABET.contains(&b)), "{k}");
        }
    }

    #[test]
    fn base36_encodes_known_values() {
        assert_eq!(base36(&[0, 35], 3), "00z");
        assert_eq!(base36(&[1, 0], 2), "74");
        assert_eq!(base36(&[255; 40], 62).len(), 62);
    }
}
