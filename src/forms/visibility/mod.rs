//! The visibility-expression language of form fields (`visibilityExpression`).
//!
//! v1 evaluated these strings in the browser with `new Function`. Bifrost parses them into a
//! small JavaScript subset and interprets them, so the server can evaluate them too and nothing
//! is ever executed. The language, its grammar and its deviations from JavaScript are specified
//! in `docs/visibility-expressions.md`; `tests/vectors/visibility.json` holds the test vectors
//! shared with the browser implementation.
//!
//! Pure computation over `serde_json` values: no storage, no HTTP. Invariants:
//! - parsing and evaluation are bounded: at most [`MAX_LENGTH`] characters and [`MAX_NESTING`]
//!   levels of nesting, no loops, a fixed set of string/array methods, strings built by `+`
//!   capped at [`MAX_STRING_BYTES`]. Binary operators are parsed with explicit stacks and runs
//!   of one precedence level become one flat node, so recursion in the parser and the
//!   evaluator is bounded by the nesting limit times a small constant: the deepest accepted
//!   expression parses and evaluates in 512 KiB of stack even in a debug build (tested);
//! - property names `__proto__`, `constructor` and `prototype` never reach the evaluator
//!   (rejected at parse time), and only own properties of the context's JSON are visible;
//! - every error carries the byte offset in the source it concerns; the whole source is
//!   tokenized before it is parsed, so a lexical error is reported before a grammar error;
//! - the result of an expression is what JavaScript would compute, except for the documented
//!   deviations (a missing intermediate object reads as `undefined` instead of throwing, objects
//!   and arrays compare by value); evaluation errors make a field visible (fail-open, as v1).
//!
//! Layout: [`lexer`] turns the whole source into tokens, [`parser`] builds the flat syntax tree
//! (nesting limit, forbidden properties, the method list), [`evaluator`] interprets it over the
//! context's JSON, and [`numbers`] holds JavaScript's number/string conversions that the parser
//! (computed keys such as `a[1]`) and the evaluator share. Each depends only on the ones before
//! it; this file is the public surface and the end-to-end tests (the shared vectors).

mod evaluator;
mod lexer;
mod numbers;
mod parser;

use serde_json::Value;

use parser::Node;

/// Longest accepted expression, in characters (Unicode scalar values).
pub const MAX_LENGTH: usize = 2000;

/// Deepest accepted nesting: parentheses, unary operators, conditional branches and method
/// arguments each open one level.
pub const MAX_NESTING: usize = 64;

/// Longest string `+` may build, in bytes of UTF-8: a handful of `+` over large form values
/// could otherwise build a very large string. Beyond it, evaluation fails (and the field shows).
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// A parse or evaluation error, with the byte offset in the source it concerns.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{message} at position {position}")]
pub struct ExpressionError {
    pub position: usize,
    pub message: String,
}

impl ExpressionError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// A parsed visibility expression, ready to be evaluated against any number of contexts.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    root: Node,
}

impl Expression {
    /// Parses `source`; every syntax the language does not have is an error here, never at
    /// evaluation time, so forms can be rejected when they are saved.
    pub fn parse(source: &str) -> Result<Expression, ExpressionError> {
        if let Some((offset, _)) = source.char_indices().nth(MAX_LENGTH) {
            return Err(ExpressionError::new(
                offset,
                format!("the expression is longer than {MAX_LENGTH} characters"),
            ));
        }
        let tokens = lexer::lex(source)?;
        let root = parser::parse(tokens)?;
        Ok(Expression { root })
    }

    /// The JavaScript value of the expression (`undefined`, `NaN` and infinities become
    /// `Value::Null`, as `JSON.stringify` would write them). `context` is
    /// `{"field": …, "workflow": …, "query": …}`.
    pub fn evaluate(&self, context: &Value) -> Result<Value, ExpressionError> {
        evaluator::evaluate(&self.root, context)
    }

    /// Whether the field is shown: the JavaScript truthiness of the result. An evaluation error
    /// (such as calling `.toLowerCase()` on a number) shows the field, as v1 did.
    pub fn is_visible(&self, context: &Value) -> bool {
        evaluator::truthy(&self.root, context).unwrap_or(true)
    }
}

/// Parses and evaluates `source`; an unparsable expression shows the field (fail-open, as v1).
/// Forms are checked with [`Expression::parse`] when saved, so this only matters for stored
/// forms that predate the check.
pub fn is_visible(source: &str, context: &Value) -> bool {
    Expression::parse(source).map_or(true, |expression| expression.is_visible(context))
}

#[cfg(test)]
mod tests {
    use super::evaluator::json_equal;
    use super::*;
    use serde_json::json;

    const VECTORS: &str = include_str!("../../../tests/vectors/visibility.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).expect("vectors are JSON")
    }

    fn list<'v>(vectors: &'v Value, name: &str) -> &'v Vec<Value> {
        vectors[name].as_array().expect("a list of vectors")
    }

    #[test]
    fn every_case_evaluates_as_specified() {
        let vectors = vectors();
        let cases = list(&vectors, "cases");
        assert!(cases.len() >= 80, "only {} cases", cases.len());
        let mut failures = Vec::new();
        for case in cases {
            let source = case["expression"].as_str().expect("expression");
            let context = &case["context"];
            let expression = match Expression::parse(source) {
                Ok(expression) => expression,
                Err(error) => {
                    failures.push(format!("{source}: does not parse: {error}"));
                    continue;
                }
            };
            let visible = case["visible"].as_bool().expect("visible");
            if expression.is_visible(context) != visible {
                failures.push(format!("{source}: expected visible={visible}"));
            }
            if is_visible(source, context) != visible {
                failures.push(format!("{source}: is_visible() disagrees"));
            }
            let result = expression.evaluate(context);
            let expects_error = case["error"].as_bool().unwrap_or(false);
            if result.is_err() != expects_error {
                failures.push(format!(
                    "{source}: expected error={expects_error}, got {result:?}"
                ));
            }
            if let Some(expected) = case.get("value") {
                match &result {
                    Ok(value) if json_equal(value, expected) => {}
                    other => failures.push(format!("{source}: expected {expected}, got {other:?}")),
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_deviation_gives_the_bifrost_answer() {
        let vectors = vectors();
        for case in list(&vectors, "deviations") {
            let source = case["expression"].as_str().expect("expression");
            let visible = case["visible"].as_bool().expect("visible");
            assert!(
                case["javascript"].is_string(),
                "{source}: explain JavaScript's answer"
            );
            let expression = Expression::parse(source).expect(source);
            assert_eq!(expression.is_visible(&case["context"]), visible, "{source}");
        }
    }

    #[test]
    fn every_invalid_expression_is_rejected_where_specified() {
        let vectors = vectors();
        let invalid = list(&vectors, "invalid");
        assert!(invalid.len() >= 15);
        for case in invalid {
            let source = case["expression"].as_str().expect("expression");
            let error = Expression::parse(source).expect_err(source);
            if let Some(position) = case.get("position") {
                assert_eq!(
                    Some(error.position as u64),
                    position.as_u64(),
                    "{source}: {error}"
                );
            }
            assert!(is_visible(source, &json!({})), "unparsable means visible");
        }
    }

    #[test]
    fn length_limit_counts_characters() {
        let at_limit = format!("'{}'", "é".repeat(MAX_LENGTH - 2));
        assert!(Expression::parse(&at_limit).is_ok());
        let over = format!("'{}'", "é".repeat(MAX_LENGTH - 1));
        let error = Expression::parse(&over).expect_err("too long");
        assert_eq!(error.position, over.len() - 1);
        assert!(error.message.contains("longer than 2000"));
    }

    #[test]
    fn errors_carry_byte_positions() {
        let cases = [
            ("context.field.a = 1", 16, "assignment"),
            ("'é' + alert(1)", 7, "unknown name `alert`"),
            (
                "context.field.x.toString()",
                16,
                "unknown method `toString`",
            ),
            ("context.field.__proto__", 14, "`__proto__`"),
            ("(1 + 2", 6, "expected `)`"),
            ("'abc", 0, "unterminated string"),
            ("", 0, "expected a value"),
            ("1 2", 2, "unexpected number"),
            ("'a\\qb'", 2, "unsupported escape"),
        ];
        for (source, position, message) in cases {
            let error = Expression::parse(source).expect_err(source);
            assert_eq!(error.position, position, "{source}: {error}");
            assert!(error.message.contains(message), "{source}: {error}");
            assert_eq!(
                error.to_string(),
                format!("{} at position {position}", error.message)
            );
        }
    }

    #[test]
    fn the_deepest_accepted_expression_parses_and_evaluates_on_a_small_stack() {
        // Between two parentheses every precedence level adds a node that the nesting limit
        // does not count: this is the tallest tree the limits allow. Threads get 2 MiB of
        // stack by default; this must fit in a quarter of that even in a debug build.
        let level = "0||1&&1==1<2+1*";
        let mut source = String::from("-1");
        for _ in 0..MAX_NESTING - 1 {
            source = format!("({level}{source})");
        }
        assert!(source.chars().count() <= MAX_LENGTH);
        let result = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || Expression::parse(&source)?.evaluate(&json!({})))
            .expect("thread")
            .join()
            .expect("no stack overflow");
        assert_eq!(result, Ok(json!(true)));
    }
}
