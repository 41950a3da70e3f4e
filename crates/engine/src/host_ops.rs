//! The machinery behind the SDK's operation table (in [`host`](crate::host)): the
//! `sdk_operations!` macro that turns the table into the `SdkHost` trait, the `HostOp` enum and
//! its dispatch; the parsing of a Python call into a `HostOp`; and the conversion of a host's
//! answer into the JSON the Python side reads.
//!
//! Parsing is serde's (`HostOp` is tagged `{"op": name, "args": {...}}`); this module only feeds
//! it the call in that order and words its errors the way the SDK always has (`config.get:
//! 'key' is required`). The argument helpers keep the SDK's lenient defaults (a missing
//! `location` is the workspace, a missing `isActive` is true).
//!
//! Must not depend on pyo3 or on any host implementation.

use base64::Engine as _;
use serde::de::value::{StrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::{Map, Value};

use crate::host::{ConfigValue, FileLocation, HostError, HostOp, HostResult};

/// Declares the SDK's operations (see `host.rs`): each
/// `"name" => fn method(args) -> result;` becomes a method of `SdkHost` (defaulting to
/// `Unsupported(name)`), a variant of `HostOp` tagged `name` whose fields are the arguments
/// (camelCase on the wire), and an arm of `HostOp::run`.
macro_rules! sdk_operations {
    ($(
        $(#[doc = $doc:literal])*
        $name:literal => fn $method:ident( $( $(#[$attr:meta])* $arg:ident : $ty:ty ),* $(,)? ) -> $ret:ty;
    )*) => {
        /// One SDK call, parsed from the Python side's `(op, args)` by serde.
        #[allow(non_camel_case_types)]
        #[derive(Debug, ::serde::Deserialize)]
        #[serde(tag = "op", content = "args")]
        pub(crate) enum HostOp {
            $(
                #[serde(rename = $name, rename_all = "camelCase")]
                $method { $( $(#[$attr])* $arg: $ty ),* },
            )*
        }

        impl HostOp {
            /// Every operation's name, in declaration order.
            pub(crate) const NAMES: &'static [&'static str] = &[$($name),*];

            /// Runs the call against `host` and returns its JSON result.
            pub(crate) async fn run(
                self,
                host: &dyn SdkHost,
                scope: &HostScope,
            ) -> HostResult<::serde_json::Value> {
                Ok(match self {
                    $(
                        HostOp::$method { $($arg),* } => $crate::host_ops::IntoReply::into_reply(
                            host.$method(scope, $($arg),*).await?,
                        ),
                    )*
                })
            }
        }

        /// Storage-backed services the Python SDK reaches, one method per SDK operation. Every
        /// method defaults to [`HostError::Unsupported`] naming the operation, so a host can
        /// grow method by method.
        #[::async_trait::async_trait]
        pub trait SdkHost: Send + Sync + 'static {
            $(
                $(#[doc = $doc])*
                #[allow(unused_variables)]
                async fn $method(&self, scope: &HostScope, $( $arg: $ty ),*) -> HostResult<$ret> {
                    Err(HostError::Unsupported($name.to_owned()))
                }
            )*
        }
    };
}

pub(crate) use sdk_operations;

impl HostOp {
    /// Parses one call: `op` as the Python side names it, `args` its JSON object.
    pub(crate) fn parse(op: &str, args: &str) -> HostResult<Self> {
        if !Self::NAMES.contains(&op) {
            return Err(HostError::Unsupported(op.to_owned()));
        }
        let args: Map<String, Value> = serde_json::from_str(args).map_err(|e| {
            HostError::InvalidInput(format!("{op}: arguments are not a JSON object: {e}"))
        })?;
        Self::deserialize(Call {
            op,
            args: Some(args),
        })
        .map_err(|e| HostError::InvalidInput(format!("{op}: {}", wording(&e.to_string()))))
    }
}

/// serde's "missing field `key`" in the SDK's words.
fn wording(message: &str) -> String {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
        .map_or_else(
            || message.to_owned(),
            |field| format!("'{field}' is required"),
        )
}

/// A call as a map of `op` (first, so serde reads the tag before the arguments and never
/// buffers them) and `args`.
struct Call<'a> {
    op: &'a str,
    args: Option<Map<String, Value>>,
}

impl<'de> Deserializer<'de> for Call<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(CallAccess {
            op: Some(self.op),
            args: self.args,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct CallAccess<'a> {
    op: Option<&'a str>,
    args: Option<Map<String, Value>>,
}

impl<'de> MapAccess<'de> for CallAccess<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = if self.op.is_some() {
            "op"
        } else if self.args.is_some() {
            "args"
        } else {
            return Ok(None);
        };
        seed.deserialize(StrDeserializer::<Self::Error>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        if let Some(op) = self.op.take() {
            return seed.deserialize(StrDeserializer::<Self::Error>::new(op));
        }
        let args = self.args.take().unwrap_or_default();
        seed.deserialize(Args(args))
    }
}

/// The arguments of a call: a map whose value errors name their key.
struct Args(Map<String, Value>);

impl<'de> Deserializer<'de> for Args {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ArgsAccess {
            entries: self.0.into_iter(),
            pending: None,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct ArgsAccess {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for ArgsAccess {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(StringDeserializer::<Self::Error>::new(key.clone()))?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was read before its key"))?;
        seed.deserialize(value)
            .map_err(|e| de::Error::custom(format!("{key} {}", must_be(&e.to_string()))))
    }
}

/// serde's "invalid type: integer `5`, expected a string" as "must be a string, got integer `5`".
fn must_be(message: &str) -> String {
    message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
        .map_or_else(
            || message.to_owned(),
            |(got, expected)| format!("must be {expected}, got {got}"),
        )
}

// ---- argument helpers (named in the operation table) ---------------------------------------

pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn workspace() -> FileLocation {
    FileLocation::Workspace
}

/// `isActive`: anything but a boolean counts as the default, true.
pub(crate) fn bool_or_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Value::deserialize(d)?.as_bool().unwrap_or(true))
}

/// An object of changes; anything else is no change.
pub(crate) fn object_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}

/// An optional string: `null` is empty.
pub(crate) fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A list of ids; anything but a list is none, and every id must be a string.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let Value::Array(items) = Value::deserialize(d)? else {
        return Ok(Vec::new());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            other => Err(de::Error::custom(format!("must be strings, got {other}"))),
        })
        .collect()
}

/// `workspace` or `temp`; a missing or non-string location is the workspace.
pub(crate) fn location<'de, D: Deserializer<'de>>(d: D) -> Result<FileLocation, D::Error> {
    match Value::deserialize(d)?.as_str().unwrap_or("workspace") {
        "workspace" => Ok(FileLocation::Workspace),
        "temp" => Ok(FileLocation::Temp),
        other => Err(de::Error::custom(format!(
            "must be 'workspace' or 'temp', got '{other}'"
        ))),
    }
}

/// File content, base64 as the Python side sends it.
pub(crate) fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| de::Error::custom(format!("is not base64: {e}")))
}

// ---- answers ------------------------------------------------------------------------------

/// A host method's answer as the JSON the Python side reads (`null` is `None`).
pub(crate) trait IntoReply {
    fn into_reply(self) -> Value;
}

impl IntoReply for () {
    fn into_reply(self) -> Value {
        Value::Null
    }
}

impl IntoReply for bool {
    fn into_reply(self) -> Value {
        Value::Bool(self)
    }
}

impl IntoReply for Value {
    fn into_reply(self) -> Value {
        self
    }
}

impl IntoReply for Option<Value> {
    fn into_reply(self) -> Value {
        self.unwrap_or(Value::Null)
    }
}

impl IntoReply for Option<String> {
    fn into_reply(self) -> Value {
        self.map_or(Value::Null, Value::String)
    }
}

/// `{"value", "secret"}`: the SDK registers a secret's value for masking before returning it.
impl IntoReply for Option<ConfigValue> {
    fn into_reply(self) -> Value {
        self.map_or(
            Value::Null,
            |cv| serde_json::json!({"value": cv.value, "secret": cv.secret}),
        )
    }
}

impl IntoReply for Map<String, Value> {
    fn into_reply(self) -> Value {
        Value::Object(self)
    }
}

impl IntoReply for Vec<Value> {
    fn into_reply(self) -> Value {
        Value::Array(self)
    }
}

impl IntoReply for Vec<String> {
    fn into_reply(self) -> Value {
        Value::Array(self.into_iter().map(Value::String).collect())
    }
}

/// File content, base64-encoded for the Python side.
impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
}

/// Checks a parsed call's fields in tests.
#[cfg(test)]
fn parsed(op: &str, args: &str) -> HostResult<String> {
    HostOp::parse(op, args).map(|op| format!("{op:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_missing_field() {
        let err = HostOp::parse("config.get", "{}").unwrap_err();
        assert_eq!(
            err,
            HostError::InvalidInput("config.get: 'key' is required".into())
        );
        let err = HostOp::parse("files.read", r#"{"path":"a","location":"disk"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("location must be 'workspace' or 'temp'"),
            "{err}"
        );
        assert_eq!(
            HostOp::parse("nope.x", "{}").unwrap_err(),
            HostError::Unsupported("nope.x".into())
        );
    }

    #[test]
    fn type_errors_name_the_argument() {
        let err = HostOp::parse("organizations.create", r#"{"name": 5}"#).unwrap_err();
        assert_eq!(
            err,
            HostError::InvalidInput(
                "organizations.create: name must be a string, got integer `5`".into()
            )
        );
        let err =
            HostOp::parse("roles.assign_users", r#"{"roleId": "r", "ids": ["a", 1]}"#).unwrap_err();
        assert!(
            err.to_string().contains("ids must be strings, got 1"),
            "{err}"
        );
        let err = HostOp::parse("files.write", r#"{"path": "a", "content": "%%"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("files.write: content is not base64"),
            "{err}"
        );
        let err = HostOp::parse("config.list", "[1]").unwrap_err();
        assert!(
            err.to_string().contains("arguments are not a JSON object"),
            "{err}"
        );
    }

    #[test]
    fn lenient_defaults_are_kept() {
        assert_eq!(
            parsed("organizations.create", r#"{"name": "A", "isActive": null}"#).unwrap(),
            r#"organization_create { name: "A", domain: None, is_active: true }"#
        );
        assert_eq!(
            parsed("files.list", r#"{"path": "", "location": 5}"#).unwrap(),
            r#"file_list { location: Workspace, path: "" }"#
        );
        assert_eq!(
            parsed("roles.create", r#"{"name": "R", "description": null}"#).unwrap(),
            r#"role_create { name: "R", description: "", permissions: None }"#
        );
        assert_eq!(
            parsed("config.set", r#"{"key": "k", "extra": 1}"#).unwrap(),
            r#"config_set { key: "k", value: Null }"#
        );
        assert_eq!(
            parsed("roles.update", r#"{"roleId": "r", "updates": 3}"#).unwrap(),
            r#"role_update { role_id: "r", updates: {} }"#
        );
        let listed = parsed("executions.list", r#"{"workflowName": "w", "limit": 5}"#).unwrap();
        assert!(listed.contains(r#"workflow_name: Some("w")"#), "{listed}");
        assert!(listed.contains("limit: Some(5)"), "{listed}");
    }

    #[test]
    fn every_operation_is_named_once() {
        let mut names = HostOp::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HostOp::NAMES.len());
        for name in HostOp::NAMES {
            // Every declared name parses (to an error about its arguments at worst).
            assert!(
                !matches!(HostOp::parse(name, "{}"), Err(HostError::Unsupported(_))),
                "{name}"
            );
        }
    }
}
