//! [`SecretName`]: Key Vault's name rules, and the org-scoped naming scheme.
//!
//! Names follow Key Vault: 1–127 characters of `[0-9A-Za-z-]`, compared case-insensitively.
//! A `SecretName` is stored lower-cased, so equality, hashing and prefix matching are
//! case-insensitive by construction. Depends only on `bifrost_store::Scope` and the error type.
//!
//! # Scoped names
//!
//! Tenant secrets are named `bifrost-<scope>-<key>`, built only by [`SecretName::scoped`]:
//!
//! | scope | `<scope>` segment | example |
//! |---|---|---|
//! | `Global` | `global` | `bifrost-global-smtp-password` |
//! | org id made of `[0-9a-z-]` only (UUIDs) | `<len>-<orgid>` | `bifrost-36-6f1c…0001-halo-client-secret` |
//! | any other org id (upper case or `_`) | `<len>x-<escaped>` | org `Ab_c` → `bifrost-6x--ab-0c-key` |
//!
//! `<len>` is the decimal length of the org segment that follows. In the escaped form `-` is
//! written `--`, `_` is written `-0` and an upper-case letter `X` is written `-x`.
//! `<key>` is lower-cased, every character outside `[0-9a-z]` becomes `-`, runs of `-` collapse
//! and leading/trailing `-` are dropped.
//!
//! Invariants (tested below and in the conformance suite):
//! - injective per scope: two different scopes never produce the same name, whatever the keys
//!   (the length prefix says exactly where the org segment ends, so org `a` with key `b-c` and
//!   org `a-b` with key `c` differ: `bifrost-1-a-b-c` vs `bifrost-3-a-b-c`; `x` marks the
//!   escaped alphabet so the two org encodings cannot meet);
//! - prefix isolation: [`SecretName::scope_prefix`] of one scope is never a prefix of another
//!   scope's names (`global` starts with a letter, org segments with a digit, and the length
//!   is terminated by `-` or `x`);
//! - every scoped name is at most 127 characters, otherwise construction fails naming `key`.

use std::fmt;

use bifrost_store::Scope;

use crate::error::{SecretsError, SecretsResult};

/// Key Vault's limit on secret names.
pub const MAX_NAME_LEN: usize = 127;

const NAME_PREFIX: &str = "bifrost-";
const GLOBAL_SEGMENT: &str = "global";

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    /// Validates a raw Key Vault name (field `secretName`). Prefer [`SecretName::scoped`] for
    /// tenant data; raw names are for platform-level secrets and for names read back from a vault.
    pub fn parse(raw: &str) -> SecretsResult<Self> {
        Self::parse_field("secretName", raw)
    }

    fn parse_field(field: &str, raw: &str) -> SecretsResult<Self> {
        if raw.is_empty() || raw.len() > MAX_NAME_LEN {
            return Err(SecretsError::invalid(
                field,
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(SecretsError::invalid(
                field,
                "may contain only letters, digits and '-'",
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The name of `key` inside `scope` (see the module docs for the scheme). Fails with field
    /// `key` when the key has no letter or digit, or the name would exceed 127 characters.
    pub fn scoped(scope: &Scope, key: &str) -> SecretsResult<Self> {
        let key = normalize_key(key);
        if key.is_empty() {
            return Err(SecretsError::invalid(
                "key",
                "must contain at least one letter or digit",
            ));
        }
        let prefix = Self::scope_prefix(scope);
        let len = prefix.len() + key.len();
        if len > MAX_NAME_LEN {
            return Err(SecretsError::invalid(
                "key",
                format!(
                    "is too long: the scoped secret name would be {len} characters; Key Vault allows {MAX_NAME_LEN} (at most {} for this scope)",
                    MAX_NAME_LEN.saturating_sub(prefix.len())
                ),
            ));
        }
        Ok(Self(prefix + &key))
    }

    /// The prefix shared by every scoped name of `scope` and by no other scope's names; pass it
    /// to `SecretStore::list_names`.
    pub fn scope_prefix(scope: &Scope) -> String {
        let segment = match scope {
            Scope::Global => GLOBAL_SEGMENT.to_owned(),
            Scope::Org(org) => {
                let id = org.as_str();
                if id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    format!("{}-{id}", id.len())
                } else {
                    let escaped = escape_org_id(id);
                    format!("{}x-{escaped}", escaped.len())
                }
            }
        };
        format!("{NAME_PREFIX}{segment}-")
    }

    /// The normalised key if this name belongs to `scope`, e.g. to show a tenant its keys.
    pub fn key_in_scope(&self, scope: &Scope) -> Option<&str> {
        let prefix = Self::scope_prefix(scope);
        self.0
            .strip_prefix(prefix.as_str())
            .filter(|k| !k.is_empty())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a listing prefix against the name alphabet (field `prefix`) and lower-cases it.
pub(crate) fn normalize_prefix(prefix: &str) -> SecretsResult<String> {
    if prefix.len() > MAX_NAME_LEN
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(SecretsError::invalid(
            "prefix",
            format!("may contain only letters, digits and '-', at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(prefix.to_ascii_lowercase())
}

fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn escape_org_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len() * 2);
    for c in id.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' => out.push_str("--"),
            '_' => out.push_str("-0"),
            'A'..='Z' => {
                out.push('-');
                out.push(c.to_ascii_lowercase());
            }
            // OrgId admits only [A-Za-z0-9_-]; anything else would be a bug in OrgId, and
            // hex-escaping it keeps the encoding injective regardless.
            other => {
                for b in other.to_string().bytes() {
                    out.push_str(&format!("-1{b:02x}"));
                }
            }
        }
    }
    out
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({})", self.0)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bifrost_store::OrgId;

    fn org(id: &str) -> Scope {
        Scope::Org(OrgId::parse(id).unwrap())
    }

    fn check(scope: &Scope, key: &str, expected: &str) {
        assert_eq!(SecretName::scoped(scope, key).unwrap().as_str(), expected);
    }

    #[test]
    fn scheme_examples() {
        check(
            &Scope::Global,
            "SMTP password",
            "bifrost-global-smtp-password",
        );
        check(
            &org("6f1c2a5e-0000-4000-8000-000000000001"),
            "halo.client_secret",
            "bifrost-36-6f1c2a5e-0000-4000-8000-000000000001-halo-client-secret",
        );
        check(&org("Ab_c"), "key", "bifrost-6x--ab-0c-key");
        check(&org("a"), "--x__y--", "bifrost-1-a-x-y");
    }

    #[test]
    fn raw_names_follow_key_vault_rules() {
        assert_eq!(
            SecretName::parse("My-Secret1").unwrap().as_str(),
            "my-secret1"
        );
        assert_eq!(
            SecretName::parse("ABC").unwrap(),
            SecretName::parse("abc").unwrap()
        );
        for bad in ["", "a_b", "a.b", "a/b", "a b", "é", &"a".repeat(128)] {
            let err = SecretName::parse(bad).unwrap_err();
            assert!(
                matches!(&err, SecretsError::Invalid { field, .. } if field == "secretName"),
                "{bad:?}: {err}"
            );
        }
        assert!(SecretName::parse(&"a".repeat(127)).is_ok());
    }

    #[test]
    fn keys_without_letters_or_digits_are_rejected() {
        let err = SecretName::scoped(&Scope::Global, "--__ ").unwrap_err();
        assert!(matches!(err, SecretsError::Invalid { ref field, .. } if field == "key"));
    }

    #[test]
    fn long_keys_are_rejected_naming_the_field() {
        let scope = org("6f1c2a5e-0000-4000-8000-000000000001");
        let room = MAX_NAME_LEN - SecretName::scope_prefix(&scope).len();
        assert_eq!(
            SecretName::scoped(&scope, &"k".repeat(room))
                .unwrap()
                .as_str()
                .len(),
            MAX_NAME_LEN
        );
        let err = SecretName::scoped(&scope, &"k".repeat(room + 1)).unwrap_err();
        assert!(matches!(err, SecretsError::Invalid { ref field, .. } if field == "key"));
    }

    #[test]
    fn different_scopes_never_share_names_or_prefixes() {
        let scopes = vec![
            Scope::Global,
            org("global-x"),
            org("a"),
            org("a-b"),
            org("a-b-c"),
            org("A"),
            org("ab"),
            org("a_b"),
            org("a--b"),
            org("a-"),
            org("-a"),
            org("A-b"),
            org("1"),
            org("1x"),
            org("12"),
            org("0a"),
            org("x"),
            org("ABC"),
            org("abc"),
            org(&"z".repeat(64)),
        ];
        let keys = ["c", "b-c", "x-c", "1-a-c", "global-c", "-ab-c", "b", "bc"];
        let mut seen = std::collections::HashMap::new();
        for (i, scope) in scopes.iter().enumerate() {
            for key in keys {
                let Ok(name) = SecretName::scoped(scope, key) else {
                    continue;
                };
                if let Some(prev) = seen.insert(name.clone(), i) {
                    panic!("{name} produced by scopes {prev} and {i}");
                }
                for (j, other) in scopes.iter().enumerate() {
                    let owns = name.as_str().starts_with(&SecretName::scope_prefix(other));
                    assert_eq!(owns, i == j, "{name} vs prefix of scope {j}");
                    assert_eq!(name.key_in_scope(other).is_some(), i == j);
                }
            }
        }
    }

    #[test]
    fn prefixes_are_validated() {
        assert_eq!(normalize_prefix("Bifrost-").unwrap(), "bifrost-");
        assert_eq!(normalize_prefix("").unwrap(), "");
        let err = normalize_prefix("a_").unwrap_err();
        assert!(matches!(err, SecretsError::Invalid { ref field, .. } if field == "prefix"));
    }
}
