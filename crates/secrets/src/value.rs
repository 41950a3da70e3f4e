//! [`SecretValue`]: a secret string that does not print itself.
//!
//! Invariant: the plaintext leaves this type only through [`SecretValue::expose`] or
//! [`SecretValue::into_exposed`], so `{:?}`, `{}` and tracing fields show `***`. The type is
//! deliberately not `Serialize`. Depends on nothing but the error type.

use std::fmt;

use crate::error::{SecretsError, SecretsResult};

/// Largest value Key Vault accepts (25 KB, counted in bytes); enforced by every backend so that a
/// secret written locally can later move to Key Vault.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext. Call this only where the value is handed to its consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Length in bytes (the unit of the Key Vault limit).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the size limit; backends call this before sending or encrypting anything.
    pub fn validate(&self) -> SecretsResult<()> {
        if self.0.len() > MAX_VALUE_BYTES {
            return Err(SecretsError::invalid(
                "value",
                format!(
                    "is {} bytes; secret values are limited to {MAX_VALUE_BYTES} bytes",
                    self.0.len()
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let v = SecretValue::new("hunter2");
        assert_eq!(format!("{v}"), "***");
        assert_eq!(format!("{v:?}"), "SecretValue(***)");
        assert_eq!(format!("{:?}", Some(&v)), "Some(SecretValue(***))");
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn size_limit_is_inclusive() {
        assert!(
            SecretValue::new("a".repeat(MAX_VALUE_BYTES))
                .validate()
                .is_ok()
        );
        let err = SecretValue::new("a".repeat(MAX_VALUE_BYTES + 1))
            .validate()
            .unwrap_err();
        assert!(matches!(err, SecretsError::Invalid { ref field, .. } if field == "value"));
        // Multi-byte characters count in bytes, as Key Vault counts them.
        assert!(
            SecretValue::new("é".repeat(MAX_VALUE_BYTES / 2 + 1))
                .validate()
                .is_err()
        );
    }
}
