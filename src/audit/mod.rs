//! The audit log: an append-only, hash-chained record of security-relevant events (logins, key
//! use and rejection, secret access, configuration changes, cross-org denials, ...).
//!
//! Depends on the table contract only; knows nothing of HTTP or of how principals are built
//! (callers pass an actor string such as `Principal::audit_actor()`). Invariants:
//! - entry `n` stores the hash of entry `n-1`; an entry's hash is SHA-256 over a canonical
//!   serialization of all its fields ([`event::entry_hash`]), so editing, deleting or reordering
//!   any stored entry is found by [`AuditLog::verify`];
//! - sequence numbers are claimed by insert-if-absent, atomically with the head row, so
//!   concurrent appenders on any number of instances never fork the chain or leave gaps;
//! - details never hold secret values or raw keys: [`AuditEvent`] refuses secret-looking fields
//!   and raw function keys (record key ids and secret names instead).

mod event;
mod log;

pub use event::{AuditEntry, AuditEvent, AuditEventType, GENESIS_HASH, canonical_json, entry_hash};
pub use log::{
    AUDIT_TABLE, AuditError, AuditLog, AuditPage, AuditQuery, BreakReason, BrokenLink, VerifyReport,
};
