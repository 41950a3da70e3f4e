//! Audit event types, entries, and the canonical serialization their hashes are computed over.
//!
//! Pure code, no I/O. Invariants: the canonical form is independent of map ordering and of
//! serde_json features (keys are sorted here, explicitly); an entry's hash covers its sequence,
//! timestamp, event type, actor, scope, details and the previous hash, each JSON-escaped so no
//! two different entries share a serialization. New entries are keyed (HMAC-SHA256 with the
//! platform's audit key, [`crate::audit::AuditKey`]); plain SHA-256 ([`entry_hash`]) is how
//! entries written before the key existed are verified.

use std::fmt;
use std::str::FromStr;

use bifrost_store::Scope;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// The "previous hash" of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tags the canonical form so a future format can coexist with this one.
const CANONICAL_VERSION: &str = "bifrost-audit-v1";

/// Detail keys refused outright (compared case-insensitively): they name values, not ids.
const SENSITIVE_KEYS: &[&str] = &[
    "access_token",
    "api_key",
    "authorization",
    "client_secret",
    "id_token",
    "key",
    "password",
    "raw_key",
    "refresh_token",
    "secret",
    "secret_value",
    "token",
    "value",
];

macro_rules! event_types {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What happened.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum AuditEventType { $($variant),* }

        impl AuditEventType {
            pub const ALL: &[AuditEventType] = &[$(AuditEventType::$variant),*];

            /// The stored (and hashed) snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(AuditEventType::$variant => $name),* }
            }
        }

        impl FromStr for AuditEventType {
            type Err = String;
            fn from_str(value: &str) -> Result<Self, String> {
                match value {
                    $($name => Ok(AuditEventType::$variant),)*
                    other => Err(format!("unknown audit event type '{other}'")),
                }
            }
        }
    };
}

event_types! {
    Login => "login",
    KeyCreated => "key_created",
    KeyRevoked => "key_revoked",
    KeyUsed => "key_used",
    KeyRejected => "key_rejected",
    SecretRead => "secret_read",
    SecretWritten => "secret_written",
    SecretDeleted => "secret_deleted",
    ConfigChanged => "config_changed",
    CrossOrgDenied => "cross_org_denied",
    EasyAuthIgnored => "easy_auth_ignored",
    ImportGuardViolation => "import_guard_violation",
    ExecutionStarted => "execution_started",
    AdminChange => "admin_change",
    QueueMessageRejected => "queue_message_rejected",
}

impl fmt::Display for AuditEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append: what happened, who did it, in which scope, and JSON details (ids and
/// names only, never secret values).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub event_type: AuditEventType,
    pub actor: String,
    pub scope: Scope,
    pub details: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event_type: AuditEventType, actor: impl Into<String>, scope: Scope) -> Self {
        Self {
            event_type,
            actor: actor.into(),
            scope,
            details: Map::new(),
        }
    }

    /// Builder-style detail setter.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The first detail that must not be stored, as a path like `details.nested.password`.
    pub(crate) fn sensitive_field(&self) -> Option<String> {
        fn walk(value: &Value, path: &str) -> Option<String> {
            match value {
                Value::Object(map) => map.iter().find_map(|(k, v)| {
                    let path = format!("{path}.{k}");
                    if SENSITIVE_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                        Some(path)
                    } else {
                        walk(v, &path)
                    }
                }),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
                // A raw Bifrost function key, wherever it is.
                Value::String(s) if s.trim_start().starts_with(crate::auth::keys::KEY_PREFIX) => {
                    Some(path.to_owned())
                }
                _ => None,
            }
        }
        self.details.iter().find_map(|(k, v)| {
            let path = format!("details.{k}");
            if SENSITIVE_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                Some(path)
            } else {
                walk(v, &path)
            }
        })
    }
}

/// One stored link of the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// 1, 2, 3, ... without gaps.
    pub sequence: u64,
    /// UTC, microsecond precision.
    pub timestamp: OffsetDateTime,
    pub event_type: AuditEventType,
    pub actor: String,
    pub scope: Scope,
    pub details: Map<String, Value>,
    /// Hash of entry `sequence - 1` ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of the canonical serialization.
    pub hash: String,
}

/// JSON with object keys sorted (by UTF-8 bytes) and no whitespace. Strings and numbers are
/// written by serde_json, whose escaping and number formatting are deterministic.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(key));
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail; the fallback keeps this total without unwrap.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// `YYYY-MM-DDThh:mm:ss.ffffffZ`, the timestamp form that is hashed.
pub(crate) fn format_timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 1_000
    )
}

/// The hash of one entry, from its stored field values. `details` is the canonical details JSON
/// exactly as stored (hashing the stored text, not a re-serialization, keeps verification exact
/// even for floats).
pub fn entry_hash(
    sequence: u64,
    timestamp: OffsetDateTime,
    event_type: &str,
    actor: &str,
    scope: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical = canonical_entry(
        sequence, timestamp, event_type, actor, scope, details, prev_hash,
    );
    crate::auth::raw_key::hex(&Sha256::digest(canonical.as_bytes()))
}

/// The serialization an entry's hash (plain or keyed) is computed over.
pub(crate) fn canonical_entry(
    sequence: u64,
    timestamp: OffsetDateTime,
    event_type: &str,
    actor: &str,
    scope: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    format!(
        "[{},{sequence},{},{},{},{},{details},{}]",
        json_string(CANONICAL_VERSION),
        json_string(&format_timestamp(timestamp)),
        json_string(event_type),
        json_string(actor),
        json_string(scope),
        json_string(prev_hash),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": true, "x": null}], "c": "q\"\n"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"q\"\n","z":[1,{"x":null,"y":true}]},"b":1}"#
        );
    }

    #[test]
    fn hash_depends_on_every_field() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.123456 UTC);
        let base = entry_hash(7, t, "login", "user:u", "GLOBAL", "{}", GENESIS_HASH);
        let variants = [
            entry_hash(8, t, "login", "user:u", "GLOBAL", "{}", GENESIS_HASH),
            entry_hash(
                7,
                t + time::Duration::microseconds(1),
                "login",
                "user:u",
                "GLOBAL",
                "{}",
                GENESIS_HASH,
            ),
            entry_hash(7, t, "key_used", "user:u", "GLOBAL", "{}", GENESIS_HASH),
            entry_hash(7, t, "login", "user:v", "GLOBAL", "{}", GENESIS_HASH),
            entry_hash(7, t, "login", "user:u", "orgA", "{}", GENESIS_HASH),
            entry_hash(7, t, "login", "user:u", "GLOBAL", "{\"a\":1}", GENESIS_HASH),
            entry_hash(7, t, "login", "user:u", "GLOBAL", "{}", &"1".repeat(64)),
            // Field boundaries cannot be shifted: "user:u" + "GLOBAL" vs "user:uG" + "LOBAL".
            entry_hash(7, t, "login", "user:uG", "LOBAL", "{}", GENESIS_HASH),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            entry_hash(7, t, "login", "user:u", "GLOBAL", "{}", GENESIS_HASH)
        );
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in AuditEventType::ALL {
            assert_eq!(t.as_str().parse::<AuditEventType>().unwrap(), *t);
        }
        assert!("nope".parse::<AuditEventType>().is_err());
        assert_eq!(AuditEventType::ALL.len(), 15);
    }

    #[test]
    fn secret_looking_details_are_found() {
        let ok = AuditEvent::new(AuditEventType::SecretRead, "user:u", Scope::Global)
            .detail("secret_name", "halo-client-secret")
            .detail("key_id", "0123456789abcdef")
            .detail("nested", json!({"names": ["a", "b"]}));
        assert_eq!(ok.sensitive_field(), None);
        let cases = [
            (json!({"password": "x"}), "details.password"),
            (json!({"Value": "x"}), "details.Value"),
            (
                json!({"n": {"access_token": "x"}}),
                "details.n.access_token",
            ),
            (
                json!({"n": ["ok", "bfk_0123456789abcdef_xyz"]}),
                "details.n[1]",
            ),
        ];
        for (details, path) in cases {
            let Value::Object(details) = details else {
                unreachable!()
            };
            let event = AuditEvent {
                details,
                ..AuditEvent::new(AuditEventType::ConfigChanged, "a", Scope::Global)
            };
            assert_eq!(event.sensitive_field().as_deref(), Some(path));
        }
    }
}
