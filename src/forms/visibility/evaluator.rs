//! The visibility language's evaluator: a syntax tree interpreted over the context's JSON
//! (`{"field": …, "workflow": …, "query": …}`), with JavaScript's values and conversions.
//!
//! Values borrow from the context and the tree ([`Val`]); only own properties of the JSON are
//! visible; arrays and objects compare by value (a documented deviation); `+` refuses to build
//! a string over [`MAX_STRING_BYTES`]. Each compound node is evaluated in its own function so
//! the recursive frame stays small (see the stack test in `mod.rs`). Errors carry the position
//! of the operator or method at fault. Depends on the parser's tree and on `numbers`.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::lexer::is_js_whitespace;
use super::numbers::{number_to_string, string_to_number};
use super::parser::{BinaryOp, Method, Node, Operation, Step};
use super::{ExpressionError, MAX_STRING_BYTES};

/// The JSON value of `node` (`undefined`, `NaN` and infinities become `null`).
pub(super) fn evaluate(node: &Node, context: &Value) -> Result<Value, ExpressionError> {
    eval(node, context).map(|value| value.to_json())
}

/// The JavaScript truthiness of `node`'s value.
pub(super) fn truthy(node: &Node, context: &Value) -> Result<bool, ExpressionError> {
    eval(node, context).map(|value| value.truthy())
}

/// A JavaScript value during evaluation. Arrays and objects borrow from the context; strings
/// borrow from the context or the syntax tree until an operation builds a new one.
#[derive(Debug, Clone)]
enum Val<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    Arr(&'a [Value]),
    Obj(&'a Map<String, Value>),
}

impl<'a> Val<'a> {
    fn from_json(value: &'a Value) -> Self {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(items) => Val::Arr(items),
            Value::Object(map) => Val::Obj(map),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Val::Undefined | Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => number_to_json(*n),
            Val::Str(s) => Value::String(s.clone().into_owned()),
            Val::Arr(items) => Value::Array(items.to_vec()),
            Val::Obj(map) => Value::Object((*map).clone()),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Val::Undefined => "undefined",
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Num(_) => "a number",
            Val::Str(_) => "a string",
            Val::Arr(_) => "an array",
            Val::Obj(_) => "an object",
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Val::Undefined | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Arr(_) | Val::Obj(_) => true,
        }
    }

    /// JavaScript ToPrimitive: arrays and objects become their `toString()`.
    fn into_primitive(self) -> Val<'a> {
        match self {
            Val::Arr(_) | Val::Obj(_) => Val::Str(Cow::Owned(self.to_js_string().into_owned())),
            other => other,
        }
    }

    /// JavaScript ToString.
    fn to_js_string(&self) -> Cow<'a, str> {
        match self {
            Val::Undefined => Cow::Borrowed("undefined"),
            Val::Null => Cow::Borrowed("null"),
            Val::Bool(true) => Cow::Borrowed("true"),
            Val::Bool(false) => Cow::Borrowed("false"),
            Val::Num(n) => Cow::Owned(number_to_string(*n)),
            Val::Str(s) => s.clone(),
            Val::Arr(items) => Cow::Owned(array_join(items)),
            Val::Obj(_) => Cow::Borrowed("[object Object]"),
        }
    }

    /// JavaScript ToString, reusing an owned string.
    fn into_js_string(self) -> Cow<'a, str> {
        match self {
            Val::Str(s) => s,
            other => other.to_js_string(),
        }
    }

    /// JavaScript ToNumber.
    fn to_number(&self) -> f64 {
        match self {
            Val::Undefined => f64::NAN,
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) => string_to_number(s),
            Val::Arr(_) | Val::Obj(_) => string_to_number(&self.to_js_string()),
        }
    }
}

/// `Array.prototype.join(",")`: `null` and `undefined` elements become empty strings.
fn array_join(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::Null => Cow::Borrowed(""),
            other => Val::from_json(other).to_js_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn number_to_json(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT {
        // Integral and exact, so the cast is lossless; `-0` becomes `0` as in JSON.stringify.
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// Strict equality (`===`), except that arrays and objects compare by value (JavaScript
/// compares their identity, which JSON data does not have).
fn strict_equals(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Undefined, Val::Undefined) | (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Arr(x), Val::Arr(y)) => arrays_equal(x, y),
        (Val::Obj(x), Val::Obj(y)) => objects_equal(x, y),
        _ => false,
    }
}

pub(super) fn json_equal(a: &Value, b: &Value) -> bool {
    strict_equals(&Val::from_json(a), &Val::from_json(b))
}

fn arrays_equal(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y))
}

fn objects_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(key, x)| b.get(key).is_some_and(|y| json_equal(x, y)))
}

/// JavaScript IsLooselyEqual (`==`).
fn loose_equals(a: &Val<'_>, b: &Val<'_>) -> bool {
    let is_object = |v: &Val<'_>| matches!(v, Val::Arr(_) | Val::Obj(_));
    match (a, b) {
        (Val::Undefined | Val::Null, Val::Undefined | Val::Null) => true,
        (Val::Num(x), Val::Str(s)) | (Val::Str(s), Val::Num(x)) => *x == string_to_number(s),
        (Val::Bool(x), other) | (other, Val::Bool(x)) if !matches!(other, Val::Bool(_)) => {
            loose_equals(&Val::Num(f64::from(u8::from(*x))), other)
        }
        (object, primitive @ (Val::Num(_) | Val::Str(_)))
        | (primitive @ (Val::Num(_) | Val::Str(_)), object)
            if is_object(object) =>
        {
            loose_equals(&object.clone().into_primitive(), primitive)
        }
        _ => strict_equals(a, b),
    }
}

/// JavaScript's relational comparison: two strings compare by UTF-16 code units, anything else
/// numerically; `None` when a side is NaN (every relational operator is then false).
fn compare(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a.into_primitive(), b.into_primitive()) {
        (Val::Str(x), Val::Str(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        (x, y) => x.to_number().partial_cmp(&y.to_number()),
    }
}

/// SameValueZero, used by `Array.prototype.includes`: like `===` except that NaN finds NaN.
fn same_value_zero(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) if x.is_nan() && y.is_nan() => true,
        _ => strict_equals(a, b),
    }
}

/// Canonical array index: `0` or a decimal without leading zeros, below 2^32 - 1.
fn array_index(key: &str) -> Option<usize> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|index| *index < u64::from(u32::MAX))
        .and_then(|index| usize::try_from(index).ok())
}

fn eval<'a>(node: &'a Node, context: &'a Value) -> Result<Val<'a>, ExpressionError> {
    // Each compound node is evaluated in its own function: this one recurses, and keeping its
    // frame small keeps the deepest tree the limits allow well within a thread's stack.
    match node {
        Node::Undefined => Ok(Val::Undefined),
        Node::Null => Ok(Val::Null),
        Node::Bool(b) => Ok(Val::Bool(*b)),
        Node::Num(n) => Ok(Val::Num(*n)),
        Node::Str(s) => Ok(Val::Str(Cow::Borrowed(s))),
        Node::Root(None) => Ok(Val::from_json(context)),
        Node::Root(Some(name)) => property(Val::from_json(context), name, 0),
        Node::Path(base, steps) => eval_path(base, steps, context),
        Node::Not(operand) => eval_not(operand, context),
        Node::Neg(operand) => eval_neg(operand, context),
        Node::Chain(first, rest) => eval_chain(first, rest, context),
        Node::And(operands) => eval_logical(operands, false, context),
        Node::Or(operands) => eval_logical(operands, true, context),
        Node::Conditional(test, then, otherwise) => {
            eval_conditional(test, then, otherwise, context)
        }
    }
}

#[inline(never)]
fn eval_path<'a>(
    base: &'a Node,
    steps: &'a [Step],
    context: &'a Value,
) -> Result<Val<'a>, ExpressionError> {
    let mut value = eval(base, context)?;
    for step in steps {
        value = match step {
            Step::Property { name, position } => property(value, name, *position)?,
            Step::Call {
                method,
                args,
                position,
            } => {
                let args = args
                    .iter()
                    .map(|arg| eval(arg, context))
                    .collect::<Result<Vec<_>, _>>()?;
                call(value, *method, &args, *position)?
            }
        };
    }
    Ok(value)
}

#[inline(never)]
fn eval_not<'a>(operand: &'a Node, context: &'a Value) -> Result<Val<'a>, ExpressionError> {
    Ok(Val::Bool(!eval(operand, context)?.truthy()))
}

#[inline(never)]
fn eval_neg<'a>(operand: &'a Node, context: &'a Value) -> Result<Val<'a>, ExpressionError> {
    Ok(Val::Num(-eval(operand, context)?.to_number()))
}

#[inline(never)]
fn eval_chain<'a>(
    first: &'a Node,
    rest: &'a [Operation],
    context: &'a Value,
) -> Result<Val<'a>, ExpressionError> {
    let mut value = eval(first, context)?;
    for operation in rest {
        let operand = eval(&operation.operand, context)?;
        value = binary(operation.op, value, operand, operation.position)?;
    }
    Ok(value)
}

/// `&&` (stops at the first falsy operand) or `||` (`stop_when` true: at the first truthy one);
/// the result is the operand where it stopped, or the last one.
#[inline(never)]
fn eval_logical<'a>(
    operands: &'a [Node],
    stop_when: bool,
    context: &'a Value,
) -> Result<Val<'a>, ExpressionError> {
    let mut value = Val::Undefined;
    for operand in operands {
        value = eval(operand, context)?;
        if value.truthy() == stop_when {
            break;
        }
    }
    Ok(value)
}

#[inline(never)]
fn eval_conditional<'a>(
    test: &'a Node,
    then: &'a Node,
    otherwise: &'a Node,
    context: &'a Value,
) -> Result<Val<'a>, ExpressionError> {
    if eval(test, context)?.truthy() {
        eval(then, context)
    } else {
        eval(otherwise, context)
    }
}

/// Reads an own property. Unlike JavaScript, reading from `undefined` or `null` gives
/// `undefined` instead of throwing, so `context.workflow.user.email` is simply missing when
/// `user` is.
fn property<'a>(value: Val<'a>, name: &str, position: usize) -> Result<Val<'a>, ExpressionError> {
    Ok(match value {
        Val::Obj(map) => map.get(name).map_or(Val::Undefined, Val::from_json),
        Val::Arr(items) if name == "length" => Val::Num(items.len() as f64),
        Val::Arr(items) => array_index(name)
            .and_then(|index| items.get(index))
            .map_or(Val::Undefined, Val::from_json),
        Val::Str(s) if name == "length" => Val::Num(s.encode_utf16().count() as f64),
        Val::Str(s) => match array_index(name).and_then(|index| s.encode_utf16().nth(index)) {
            None => Val::Undefined,
            Some(unit) => match char::from_u32(u32::from(unit)) {
                Some(c) => Val::Str(Cow::Owned(c.to_string())),
                None => {
                    return Err(ExpressionError::new(
                        position,
                        "indexing into the middle of a character outside the Basic \
                         Multilingual Plane is not supported",
                    ));
                }
            },
        },
        Val::Undefined | Val::Null | Val::Bool(_) | Val::Num(_) => Val::Undefined,
    })
}

fn call<'a>(
    receiver: Val<'a>,
    method: Method,
    args: &[Val<'a>],
    position: usize,
) -> Result<Val<'a>, ExpressionError> {
    let argument = || {
        args.first()
            .map_or(Cow::Borrowed("undefined"), Val::to_js_string)
    };
    Ok(match (method, &receiver) {
        (Method::Includes, Val::Arr(items)) => {
            let needle = args.first().cloned().unwrap_or(Val::Undefined);
            Val::Bool(
                items
                    .iter()
                    .any(|item| same_value_zero(&Val::from_json(item), &needle)),
            )
        }
        (Method::Includes, Val::Str(s)) => Val::Bool(s.contains(argument().as_ref())),
        (Method::StartsWith, Val::Str(s)) => Val::Bool(s.starts_with(argument().as_ref())),
        (Method::EndsWith, Val::Str(s)) => Val::Bool(s.ends_with(argument().as_ref())),
        (Method::ToLowerCase, Val::Str(s)) => Val::Str(Cow::Owned(s.to_lowercase())),
        (Method::ToUpperCase, Val::Str(s)) => Val::Str(Cow::Owned(s.to_uppercase())),
        (Method::Trim, Val::Str(s)) => {
            Val::Str(Cow::Owned(s.trim_matches(is_js_whitespace).to_owned()))
        }
        _ => {
            let accepts = match method {
                Method::Includes => "a string or an array",
                _ => "a string",
            };
            return Err(ExpressionError::new(
                position,
                format!(
                    "`{}` needs {accepts}, not {}",
                    method.name(),
                    receiver.type_name()
                ),
            ));
        }
    })
}

fn binary<'a>(
    op: BinaryOp,
    a: Val<'a>,
    b: Val<'a>,
    position: usize,
) -> Result<Val<'a>, ExpressionError> {
    Ok(match op {
        BinaryOp::Add => match (a.into_primitive(), b.into_primitive()) {
            (x @ Val::Str(_), y) | (x, y @ Val::Str(_)) => {
                // Appending to the left string, which a chain of `+` owns after its first
                // step, keeps `a + b + c + …` linear.
                let right = y.to_js_string();
                let left = x.into_js_string();
                if left.len() + right.len() > MAX_STRING_BYTES {
                    return Err(ExpressionError::new(
                        position,
                        format!("`+` would build a string longer than {MAX_STRING_BYTES} bytes"),
                    ));
                }
                let mut joined = left.into_owned();
                joined.push_str(&right);
                Val::Str(Cow::Owned(joined))
            }
            (x, y) => Val::Num(x.to_number() + y.to_number()),
        },
        BinaryOp::Sub => Val::Num(a.to_number() - b.to_number()),
        BinaryOp::Mul => Val::Num(a.to_number() * b.to_number()),
        BinaryOp::Div => Val::Num(a.to_number() / b.to_number()),
        // Rust's `%` on f64 is C's fmod, which is JavaScript's `%`.
        BinaryOp::Rem => Val::Num(a.to_number() % b.to_number()),
        BinaryOp::Lt => Val::Bool(compare(a, b) == Some(Ordering::Less)),
        BinaryOp::Le => Val::Bool(matches!(
            compare(a, b),
            Some(Ordering::Less | Ordering::Equal)
        )),
        BinaryOp::Gt => Val::Bool(compare(a, b) == Some(Ordering::Greater)),
        BinaryOp::Ge => Val::Bool(matches!(
            compare(a, b),
            Some(Ordering::Greater | Ordering::Equal)
        )),
        BinaryOp::LooseEq => Val::Bool(loose_equals(&a, &b)),
        BinaryOp::LooseNe => Val::Bool(!loose_equals(&a, &b)),
        BinaryOp::StrictEq => Val::Bool(strict_equals(&a, &b)),
        BinaryOp::StrictNe => Val::Bool(!strict_equals(&a, &b)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Expression, MAX_STRING_BYTES};

    #[test]
    fn concatenation_is_capped() {
        let half = "x".repeat(MAX_STRING_BYTES / 2);
        let context = json!({"field": {"s": half}});
        let fits = Expression::parse("(context.field.s + context.field.s).length").expect("parses");
        assert_eq!(fits.evaluate(&context), Ok(json!(MAX_STRING_BYTES)));
        let over =
            Expression::parse("context.field.s + context.field.s + '!' === ''").expect("parses");
        let error = over.evaluate(&context).expect_err("too long");
        assert_eq!(error.position, 34);
        assert!(over.is_visible(&context), "fails open");
    }

    #[test]
    fn evaluation_errors_carry_the_method_position_and_fail_open() {
        let context = json!({"field": {"n": 5}});
        let expression =
            Expression::parse("context.field.n.toLowerCase() === '5'").expect("parses");
        let error = expression.evaluate(&context).expect_err("not a string");
        assert_eq!(error.position, 16);
        assert!(
            error
                .message
                .contains("`toLowerCase` needs a string, not a number")
        );
        assert!(expression.is_visible(&context));
    }

    #[test]
    fn results_are_json_values() {
        let context = json!({"field": {"roles": ["a", "b"], "o": {"k": 1}}});
        let eval = |source: &str| Expression::parse(source).expect(source).evaluate(&context);
        assert_eq!(eval("context.field.roles"), Ok(json!(["a", "b"])));
        assert_eq!(eval("context.field.o"), Ok(json!({"k": 1})));
        assert_eq!(eval("context.field.missing"), Ok(Value::Null));
        assert_eq!(eval("0 / 0"), Ok(Value::Null));
        assert_eq!(eval("-0"), Ok(json!(0)));
        assert_eq!(eval("0.1 + 0.2"), Ok(json!(0.30000000000000004)));
        assert_eq!(eval("2 * 3"), Ok(json!(6)));
    }
}
