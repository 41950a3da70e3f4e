//! The shape every platform key shares, function keys (`bfk_`) and workflow keys (`wk_`):
//! `<prefix><16 lowercase hex id>_<43-char URL-safe base64 of 32 random bytes>`. The id makes
//! verification one point read; only the SHA-256 of the secret bytes is stored
//! (`sha256:<hex>`). Parsing, encoding and the helpers both key stores need live here once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use time::OffsetDateTime;

pub(crate) const KEY_ID_LEN: usize = 16;
pub(crate) const SECRET_BYTES: usize = 32;
/// URL-safe base64 of 32 bytes without padding.
pub(crate) const SECRET_LEN: usize = 43;
pub(crate) const HASH_SCHEME: &str = "sha256:";

/// Whether `value` is a key id: [`KEY_ID_LEN`] lowercase hex characters.
pub(crate) fn is_key_id(value: &str) -> bool {
    value.len() == KEY_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh random key id (64 bits; stores enforce uniqueness by insert-if-absent).
pub(crate) fn generate_id() -> String {
    let mut bytes = [0u8; KEY_ID_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// `<prefix><id>_<secret>` → (id, 32 secret bytes), checking lengths and alphabets.
pub(crate) fn split<'a>(prefix: &str, raw: &'a str) -> Option<(&'a str, [u8; SECRET_BYTES])> {
    if raw.len() != prefix.len() + KEY_ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let rest = raw.strip_prefix(prefix)?;
    let (id, rest) = rest.split_at_checked(KEY_ID_LEN)?;
    let secret = rest.strip_prefix('_')?;
    if !is_key_id(id) {
        return None;
    }
    let mut bytes = [0u8; SECRET_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(secret, &mut bytes) {
        Ok(SECRET_BYTES) => {}
        _ => return None,
    }
    // Reject non-canonical encodings (trailing bits set), so one key has exactly one spelling.
    if URL_SAFE_NO_PAD.encode(bytes) != secret {
        return None;
    }
    Some((id, bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The 32 bytes of 64 hex characters (a stored hash), or `None`.
pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        let value = digit(pair[0])? * 16 + digit(pair[1])?;
        out[i] = u8::try_from(value).ok()?;
    }
    Some(out)
}

/// Storage keeps 100-ns precision; microseconds make records compare equal after a round trip.
pub(crate) fn truncate_micros(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}
