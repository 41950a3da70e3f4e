//! Validated Azure-Tables keys.
//!
//! Azure rejects `/ \ # ?` and control characters (U+0000–U+001F, U+007F–U+009F) in
//! `PartitionKey`/`RowKey` and limits each key to 1 KiB; Azurite limits keys to 512 characters.
//! We enforce the stricter union here so that both backends accept exactly the same keys and a bad
//! key is rejected before any request is sent.

use std::fmt;

use crate::error::{StoreError, StoreResult};

/// Longest key accepted, in characters (Azurite's limit, below Azure's 1 KiB).
pub const MAX_KEY_CHARS: usize = 512;

fn validate_key(field: &str, value: &str) -> StoreResult<()> {
    if value.chars().count() > MAX_KEY_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("longer than {MAX_KEY_CHARS} characters"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| forbidden_key_char(*c)) {
        return Err(StoreError::invalid(
            field,
            format!("contains the forbidden character {:?}", bad),
        ));
    }
    Ok(())
}

fn forbidden_key_char(c: char) -> bool {
    matches!(c, '/' | '\\' | '#' | '?')
        || ('\u{0}'..='\u{1f}').contains(&c)
        || ('\u{7f}'..='\u{9f}').contains(&c)
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` against the key rules shared by both backends.
            pub fn new(value: impl Into<String>) -> StoreResult<Self> {
                let value = value.into();
                validate_key($field, &value)?;
                Ok(Self(value))
            }

            /// For keys whose alphabet is a subset of the key rules by construction.
            #[allow(dead_code, reason = "generated for both key types; not every type needs it")]
            pub(crate) fn trusted(value: &str) -> Self {
                debug_assert!(validate_key($field, value).is_ok());
                Self(value.to_owned())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

key_type!(
    /// A table partition key. Tenant-owned partitions come from [`crate::Scope::partition_key`].
    PartitionKey,
    "PartitionKey"
);
key_type!(
    /// A table row key, unique within its partition; rows are ordered by it (ordinal compare).
    RowKey,
    "RowKey"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_forbidden_character() {
        for bad in [
            "a/b", "a\\b", "a#b", "a?b", "a\tb", "a\nb", "a\u{7f}b", "a\u{85}b",
        ] {
            assert!(RowKey::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_empty_and_ordinary_keys() {
        assert!(RowKey::new("").is_ok());
        assert!(PartitionKey::new("org-1_x.y~z:é").is_ok());
    }

    #[test]
    fn rejects_keys_over_the_limit() {
        assert!(RowKey::new("a".repeat(MAX_KEY_CHARS)).is_ok());
        let err = RowKey::new("a".repeat(MAX_KEY_CHARS + 1)).unwrap_err();
        assert!(err.to_string().contains("RowKey"), "{err}");
    }
}
