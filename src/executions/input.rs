//! Checks a run's input against the workflow's declared parameters before anything runs.
//!
//! Pure logic: no I/O, no HTTP, no engine calls (only the engine's `ParameterInfo` type).
//! Invariants: a required parameter without a value and without a default is an error naming it;
//! a value of the wrong JSON type is an error naming it; strings are converted to the declared
//! type only when the caller asks for it (v1 did that on the `/api/endpoints/{name}` path only,
//! bifrost-v1.md §1.3), so JSON callers get exactly the values they sent. Keys that are not
//! parameters pass through untouched (the workflow sees them as `context.extra_inputs`).

use bifrost_engine::ParameterInfo;
use serde_json::{Map, Value};

/// Whether string values may be converted to the declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coercion {
    /// JSON callers: values must already have the declared type.
    Strict,
    /// Query strings and form posts: `"3"` is an int, `"yes"` a bool, `"[1]"` a list.
    FromStrings,
}

/// One offending parameter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    /// The parameter's name.
    pub field: String,
    pub message: String,
}

impl InputError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The input to pass to the engine: checked (and, with [`Coercion::FromStrings`], converted).
/// The first offending parameter, in declaration order, is the error.
pub fn validate(
    parameters: &[ParameterInfo],
    mut input: Map<String, Value>,
    coercion: Coercion,
) -> Result<Map<String, Value>, InputError> {
    for p in parameters {
        let value = match input.get(&p.name) {
            None | Some(Value::Null) => {
                if p.required && p.default_value.is_none() {
                    return Err(InputError::new(&p.name, "is required"));
                }
                continue;
            }
            Some(v) => v,
        };
        if let Some(checked) = check(&p.name, &p.kind, value, coercion)? {
            input.insert(p.name.clone(), checked);
        }
    }
    Ok(input)
}

/// `Ok(None)`: the value is fine as it is; `Ok(Some(v))`: replace it by the converted `v`.
fn check(
    name: &str,
    kind: &str,
    value: &Value,
    coercion: Coercion,
) -> Result<Option<Value>, InputError> {
    let text = match (coercion, value) {
        (Coercion::FromStrings, Value::String(s)) => Some(s.trim()),
        _ => None,
    };
    let wrong = |what: &str| InputError::new(name, format!("must be {what}"));
    match kind {
        "string" | "date" | "datetime" => match value {
            Value::String(_) => Ok(None),
            _ => Err(wrong("a string")),
        },
        "email" => match value {
            Value::String(s) if is_email(s) => Ok(None),
            _ => Err(wrong("an email address")),
        },
        "int" => match (value, text) {
            (Value::Number(n), _) if n.is_i64() || n.is_u64() => Ok(None),
            (_, Some(t)) => t
                .parse::<i64>()
                .map(|v| Some(Value::from(v)))
                .map_err(|_| wrong("an integer")),
            _ => Err(wrong("an integer")),
        },
        "float" => match (value, text) {
            (Value::Number(_), _) => Ok(None),
            (_, Some(t)) => t
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| Some(Value::Number(n)))
                .ok_or_else(|| wrong("a number")),
            _ => Err(wrong("a number")),
        },
        "bool" => match (value, text) {
            (Value::Bool(_), _) => Ok(None),
            (_, Some(t)) => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Some(Value::Bool(true))),
                "false" | "0" | "no" | "off" => Ok(Some(Value::Bool(false))),
                _ => Err(wrong("a boolean")),
            },
            _ => Err(wrong("a boolean")),
        },
        "list" => match (value, text) {
            (Value::Array(_), _) => Ok(None),
            (_, Some(t)) => match serde_json::from_str::<Value>(t) {
                Ok(v @ Value::Array(_)) => Ok(Some(v)),
                _ => Err(wrong("a list (a JSON array)")),
            },
            _ => Err(wrong("a list")),
        },
        "json" => match (value, text) {
            // A string is a valid JSON value; convert only what parses as an object or array.
            (_, Some(t)) => match serde_json::from_str::<Value>(t) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(v)),
                _ => Ok(None),
            },
            _ => Ok(None),
        },
        // Types the decorators may add later: the engine converts or rejects them.
        _ => Ok(None),
    }
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(name: &str, kind: &str, required: bool) -> ParameterInfo {
        ParameterInfo {
            name: name.into(),
            kind: kind.into(),
            label: None,
            required,
            validation: None,
            data_provider: None,
            default_value: None,
            help_text: None,
            options: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn required_parameters_must_be_present_unless_they_have_a_default() {
        let mut with_default = param("n", "int", true);
        with_default.default_value = Some(json!(3));
        let params = [param("name", "string", true), with_default];
        let err = validate(&params, obj(json!({"n": 1})), Coercion::Strict).unwrap_err();
        assert_eq!(err.field, "name");
        let err = validate(&params, obj(json!({"name": null})), Coercion::Strict).unwrap_err();
        assert_eq!(err.field, "name", "null counts as missing");
        let ok = validate(
            &params,
            obj(json!({"name": "x", "extra": 1})),
            Coercion::Strict,
        );
        assert_eq!(ok.unwrap(), obj(json!({"name": "x", "extra": 1})));
    }

    #[test]
    fn strict_mode_rejects_strings_for_typed_parameters() {
        let params = [
            param("n", "int", false),
            param("f", "float", false),
            param("b", "bool", false),
            param("l", "list", false),
            param("e", "email", false),
            param("s", "string", false),
        ];
        for (field, value) in [
            ("n", json!("3")),
            ("n", json!(1.5)),
            ("f", json!("1.5")),
            ("b", json!("true")),
            ("l", json!("[1]")),
            ("e", json!("not-an-address")),
            ("s", json!(5)),
        ] {
            let err =
                validate(&params, obj(json!({ field: value })), Coercion::Strict).expect_err(field);
            assert_eq!(err.field, field);
        }
        let ok = json!({"n": 3, "f": 2, "b": false, "l": [1], "e": "a@b.example", "s": "x"});
        assert_eq!(
            validate(&params, obj(ok.clone()), Coercion::Strict).unwrap(),
            obj(ok)
        );
    }

    #[test]
    fn strings_are_converted_when_asked() {
        let params = [
            param("n", "int", true),
            param("f", "float", true),
            param("b", "bool", true),
            param("l", "list", true),
            param("j", "json", true),
            param("s", "string", true),
        ];
        let input =
            json!({"n": " 42", "f": "2.5", "b": "YES", "l": "[1,2]", "j": "{\"a\":1}", "s": "7"});
        let out = validate(&params, obj(input), Coercion::FromStrings).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"n": 42, "f": 2.5, "b": true, "l": [1, 2], "j": {"a": 1}, "s": "7"})
        );
        let err = validate(
            &params,
            obj(json!({"n": "x", "f": "1", "b": "1", "l": "[]", "j": 1, "s": "a"})),
            Coercion::FromStrings,
        )
        .unwrap_err();
        assert_eq!(err.field, "n");
        assert_eq!(err.message, "must be an integer");
        let err = validate(
            &params,
            obj(json!({"n": "1", "f": "1", "b": "maybe", "l": "[]", "j": 1, "s": "a"})),
            Coercion::FromStrings,
        )
        .unwrap_err();
        assert_eq!(err.field, "b");
    }
}
