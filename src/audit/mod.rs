//! The audit log: an append-only, hash-chained record of security-relevant events (logins, key
//! use and rejection, secret access, configuration changes, cross-org denials, ...).
//!
//! Depends on the table contract only; knows nothing of HTTP or of how principals are built
//! (callers pass an actor string such as `Principal::audit_actor()`). Invariants:
//! - entry `n` stores the hash of entry `n-1`; an entry's hash is HMAC-SHA256, keyed with the
//!   platform's audit key from the secret store, over a canonical serialization of all its
//!   fields (entries written before the key existed: plain SHA-256, [`event::entry_hash`]), so
//!   editing, deleting or reordering any stored entry — even re-hashing the rest of the chain —
//!   is found by [`AuditLog::verify`], and a signed anchor kept apart finds a cut tail;
//! - events anyone can cause (failed key checks, cross-org denials) go through
//!   [`AuditLog::append_aggregated`]: a flood adds a few entries per minute, not one per request;
//! - sequence numbers are claimed by insert-if-absent, atomically with the head row, so
//!   concurrent appenders on any number of instances never fork the chain or leave gaps;
//! - details never hold secret values or raw keys: [`AuditEvent`] refuses secret-looking fields
//!   and raw function keys (record key ids and secret names instead).

mod anchor;
mod event;
mod flood;
mod key;
mod log;

pub use event::{AuditEntry, AuditEvent, AuditEventType, GENESIS_HASH, canonical_json, entry_hash};
pub use key::AuditKey;
pub use log::{
    ANCHOR_TABLE, AUDIT_TABLE, AuditError, AuditLog, AuditPage, AuditQuery, BreakReason,
    BrokenLink, VerifyReport,
};
