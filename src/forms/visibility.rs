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

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Longest accepted expression, in characters (Unicode scalar values).
pub const MAX_LENGTH: usize = 2000;

/// Deepest accepted nesting: parentheses, unary operators, conditional branches and method
/// arguments each open one level.
pub const MAX_NESTING: usize = 64;

/// Longest string `+` may build, in bytes of UTF-8: a handful of `+` over large form values
/// could otherwise build a very large string. Beyond it, evaluation fails (and the field shows).
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// Property names that would reach an object's prototype in a naive browser implementation.
const FORBIDDEN_PROPERTIES: [&str; 3] = ["__proto__", "constructor", "prototype"];

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
        let tokens = lex(source)?;
        let mut parser = Parser {
            tokens,
            next: 0,
            depth: 0,
        };
        let root = parser.expression()?;
        let end = parser.peek();
        if end.kind != Tok::Eof {
            return Err(ExpressionError::new(
                end.start,
                format!("unexpected {}", end.kind.describe()),
            ));
        }
        Ok(Expression { root })
    }

    /// The JavaScript value of the expression (`undefined`, `NaN` and infinities become
    /// `Value::Null`, as `JSON.stringify` would write them). `context` is
    /// `{"field": …, "workflow": …, "query": …}`.
    pub fn evaluate(&self, context: &Value) -> Result<Value, ExpressionError> {
        eval(&self.root, context).map(|value| value.to_json())
    }

    /// Whether the field is shown: the JavaScript truthiness of the result. An evaluation error
    /// (such as calling `.toLowerCase()` on a number) shows the field, as v1 did.
    pub fn is_visible(&self, context: &Value) -> bool {
        eval(&self.root, context)
            .map(|value| value.truthy())
            .unwrap_or(true)
    }
}

/// Parses and evaluates `source`; an unparsable expression shows the field (fail-open, as v1).
/// Forms are checked with [`Expression::parse`] when saved, so this only matters for stored
/// forms that predate the check.
pub fn is_visible(source: &str, context: &Value) -> bool {
    Expression::parse(source).map_or(true, |expression| expression.is_visible(context))
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Question,
    Colon,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    LooseEq,
    LooseNe,
    StrictEq,
    StrictNe,
    And,
    Or,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        let symbol = match self {
            Tok::Num(_) => return "number".to_owned(),
            Tok::Str(_) => return "string".to_owned(),
            Tok::Ident(name) => return format!("`{name}`"),
            Tok::Eof => return "end of expression".to_owned(),
            Tok::Dot => ".",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Question => "?",
            Tok::Colon => ":",
            Tok::Not => "!",
            Tok::Minus => "-",
            Tok::Plus => "+",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::LooseEq => "==",
            Tok::LooseNe => "!=",
            Tok::StrictEq => "===",
            Tok::StrictNe => "!==",
            Tok::And => "&&",
            Tok::Or => "||",
        };
        format!("`{symbol}`")
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    start: usize,
}

/// JavaScript's WhiteSpace and LineTerminator: Rust's White_Space minus U+0085, plus U+FEFF.
fn is_js_whitespace(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}'
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

fn lex(source: &str) -> Result<Vec<Token>, ExpressionError> {
    let bytes = source.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = source[i..].chars().next() {
        if is_js_whitespace(c) {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let err = |message: &str| Err(ExpressionError::new(start, message));
        let (kind, len) = match c {
            '0'..='9' => {
                let (value, len) = lex_number(source, start)?;
                (Tok::Num(value), len)
            }
            '.' if at(i + 1).is_ascii_digit() => {
                let (value, len) = lex_number(source, start)?;
                (Tok::Num(value), len)
            }
            '"' | '\'' => {
                let (value, len) = lex_string(source, start, c)?;
                (Tok::Str(value), len)
            }
            c if is_ident_start(c) => {
                let len = source[i..]
                    .find(|c: char| !is_ident_part(c))
                    .unwrap_or(source.len() - i);
                (Tok::Ident(source[i..i + len].to_owned()), len)
            }
            '.' => (Tok::Dot, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            ':' => (Tok::Colon, 1),
            '%' => (Tok::Percent, 1),
            '?' => match at(i + 1) {
                b'?' => return err("the `??` operator is not supported; use `||`"),
                b'.' if !at(i + 2).is_ascii_digit() => {
                    return err(
                        "optional chaining (`?.`) is not needed: missing paths read as undefined",
                    );
                }
                _ => (Tok::Question, 1),
            },
            '!' => match (at(i + 1), at(i + 2)) {
                (b'=', b'=') => (Tok::StrictNe, 3),
                (b'=', _) => (Tok::LooseNe, 2),
                _ => (Tok::Not, 1),
            },
            '=' => match (at(i + 1), at(i + 2)) {
                (b'=', b'=') => (Tok::StrictEq, 3),
                (b'=', _) => (Tok::LooseEq, 2),
                (b'>', _) => return err("functions are not supported"),
                _ => return err("assignment is not allowed; compare with `===` or `==`"),
            },
            '<' | '>' => match (c, at(i + 1)) {
                ('<', b'<') | ('>', b'>') => return err("shift operators are not supported"),
                ('<', b'=') => (Tok::Le, 2),
                ('>', b'=') => (Tok::Ge, 2),
                ('<', _) => (Tok::Lt, 1),
                _ => (Tok::Gt, 1),
            },
            '&' => match at(i + 1) {
                b'&' => (Tok::And, 2),
                _ => return err("bitwise operators are not supported; use `&&`"),
            },
            '|' => match at(i + 1) {
                b'|' => (Tok::Or, 2),
                _ => return err("bitwise operators are not supported; use `||`"),
            },
            '+' | '-' | '*' | '/' => match (c, at(i + 1)) {
                (_, b'=') => return err("assignment is not allowed"),
                ('+', b'+') | ('-', b'-') => {
                    return err("increment and decrement operators are not supported");
                }
                ('*', b'*') => return err("the `**` operator is not supported"),
                ('/', b'/' | b'*') => return err("comments are not supported"),
                ('+', _) => (Tok::Plus, 1),
                ('-', _) => (Tok::Minus, 1),
                ('*', _) => (Tok::Star, 1),
                _ => (Tok::Slash, 1),
            },
            '`' => return err("template literals are not supported"),
            ';' => return err("statements are not supported; write a single expression"),
            other => return err(&format!("unexpected character {other:?}")),
        };
        tokens.push(Token { kind, start });
        i += len;
    }
    tokens.push(Token {
        kind: Tok::Eof,
        start: source.len(),
    });
    Ok(tokens)
}

/// A decimal literal at `start`: `digits [. digits] [e [+-] digits]` or `. digits [exponent]`.
fn lex_number(source: &str, start: usize) -> Result<(f64, usize), ExpressionError> {
    let bytes = source.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let digits_from = |mut i: usize| {
        while at(i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    if at(start) == b'0' {
        match at(start + 1) {
            b'0'..=b'9' | b'_' => {
                return Err(ExpressionError::new(
                    start,
                    "numbers cannot have leading zeros",
                ));
            }
            b'x' | b'X' | b'o' | b'O' | b'b' | b'B' => {
                return Err(ExpressionError::new(
                    start,
                    "only decimal numbers are supported",
                ));
            }
            _ => {}
        }
    }
    let mut i = digits_from(start);
    if at(i) == b'.' {
        i = digits_from(i + 1);
    }
    if matches!(at(i), b'e' | b'E') {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        let end = digits_from(j);
        if end == j {
            return Err(ExpressionError::new(start, "malformed number exponent"));
        }
        i = end;
    }
    if is_ident_start(char::from(at(i))) || at(i).is_ascii_digit() || at(i) >= 0x80 {
        return Err(ExpressionError::new(
            i,
            "a number cannot be followed directly by a name",
        ));
    }
    let value = source[start..i]
        .parse::<f64>()
        .map_err(|_| ExpressionError::new(start, "malformed number"))?;
    Ok((value, i - start))
}

/// A string literal opened by `quote` at `start`; returns its value and length in bytes.
fn lex_string(source: &str, start: usize, quote: char) -> Result<(String, usize), ExpressionError> {
    let unterminated = || ExpressionError::new(start, "unterminated string");
    let mut value = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let position = start + 1 + offset;
        match c {
            c if c == quote => return Ok((value, position + 1 - start)),
            '\n' | '\r' => return Err(unterminated()),
            '\\' => {
                let (_, escape) = chars.next().ok_or_else(unterminated)?;
                match escape {
                    '\\' | '\'' | '"' => value.push(escape),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'u' => {
                        let rest = &source[position + 2..];
                        let (c, len) = lex_unicode_escape(rest, position)?;
                        value.push(c);
                        for _ in 0..len {
                            chars.next();
                        }
                    }
                    _ => {
                        return Err(ExpressionError::new(
                            position,
                            format!("unsupported escape sequence \\{escape}"),
                        ));
                    }
                }
            }
            c => value.push(c),
        }
    }
    Err(unterminated())
}

/// After `\u` (at `position`): `XXXX`, a `\uXXXX\uXXXX` surrogate pair, or `{X…}`. Returns the
/// character and how many bytes of `rest` it used. Lone surrogates cannot be represented in a
/// Rust string and are rejected.
fn lex_unicode_escape(rest: &str, position: usize) -> Result<(char, usize), ExpressionError> {
    let invalid = || ExpressionError::new(position, "invalid \\u escape sequence");
    let lone = || ExpressionError::new(position, "\\u escapes must not encode a lone surrogate");
    let hex4 = |s: &str| -> Option<u32> {
        let digits = s.get(..4)?;
        if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u32::from_str_radix(digits, 16).ok()
        } else {
            None
        }
    };
    if let Some(braced) = rest.strip_prefix('{') {
        let end = braced.find('}').ok_or_else(invalid)?;
        let digits = &braced[..end];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let code = u32::from_str_radix(digits, 16).map_err(|_| invalid())?;
        if (0xD800..0xE000).contains(&code) {
            return Err(lone());
        }
        let c = char::from_u32(code).ok_or_else(invalid)?;
        return Ok((c, end + 2));
    }
    let high = hex4(rest).ok_or_else(invalid)?;
    match high {
        0xD800..=0xDBFF => {
            let low = rest
                .get(4..)
                .and_then(|s| s.strip_prefix("\\u"))
                .and_then(hex4)
                .filter(|low| (0xDC00..0xE000).contains(low))
                .ok_or_else(lone)?;
            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            Ok((char::from_u32(code).ok_or_else(invalid)?, 10))
        }
        0xDC00..=0xDFFF => Err(lone()),
        _ => Ok((char::from_u32(high).ok_or_else(invalid)?, 4)),
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and parser

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// `context`, or `field`/`workflow`/`query` (shorthands for `context.field` etc.).
    Root(Option<&'static str>),
    /// Member accesses and method calls, applied left to right; flat so that a long path does
    /// not deepen the tree.
    Path(Box<Node>, Vec<Step>),
    Not(Box<Node>),
    Neg(Box<Node>),
    /// Left-associative operators of one precedence level, applied left to right.
    Chain(Box<Node>, Vec<Operation>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Conditional(Box<Node>, Box<Node>, Box<Node>),
}

/// One operator of a chain and its right operand; `position` is the operator's.
#[derive(Debug, Clone, PartialEq)]
struct Operation {
    op: BinaryOp,
    position: usize,
    operand: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Property {
        name: String,
        position: usize,
    },
    Call {
        method: Method,
        args: Vec<Node>,
        position: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BinaryOp {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Lt,
    Le,
    Gt,
    Ge,
    LooseEq,
    LooseNe,
    StrictEq,
    StrictNe,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Includes,
    StartsWith,
    EndsWith,
    ToLowerCase,
    ToUpperCase,
    Trim,
}

impl Method {
    const ALL: [Method; 6] = [
        Method::Includes,
        Method::StartsWith,
        Method::EndsWith,
        Method::ToLowerCase,
        Method::ToUpperCase,
        Method::Trim,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::Includes => "includes",
            Method::StartsWith => "startsWith",
            Method::EndsWith => "endsWith",
            Method::ToLowerCase => "toLowerCase",
            Method::ToUpperCase => "toUpperCase",
            Method::Trim => "trim",
        }
    }

    fn arity(self) -> usize {
        match self {
            Method::Includes | Method::StartsWith | Method::EndsWith => 1,
            Method::ToLowerCase | Method::ToUpperCase | Method::Trim => 0,
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with `Eof`, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != Tok::Eof {
            self.next += 1;
        }
        token
    }

    fn eat(&mut self, kind: &Tok) -> bool {
        if &self.peek().kind == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &Tok, what: &str) -> Result<(), ExpressionError> {
        if self.eat(kind) {
            return Ok(());
        }
        Err(unexpected(self.peek(), &format!("expected {what}")))
    }

    /// Opens a nesting level at `position`; every `enter` that succeeds is paired with a
    /// `leave`.
    fn enter(&mut self, position: usize) -> Result<(), ExpressionError> {
        if self.depth >= MAX_NESTING {
            return Err(ExpressionError::new(
                position,
                format!("the expression is nested more than {MAX_NESTING} levels deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // The functions from `expression` to `group` call each other recursively for every
    // parenthesis. They stay small and leave the work (and error formatting) to helpers, so
    // that the deepest expression the nesting limit allows parses on a small stack.

    /// `expression = binary [ "?" expression ":" expression ]`
    fn expression(&mut self) -> Result<Node, ExpressionError> {
        let test = self.binary()?;
        if self.peek().kind == Tok::Question {
            return self.conditional(test);
        }
        Ok(test)
    }

    /// Operands joined by binary operators, by operator precedence with explicit stacks (so
    /// that the precedence levels cost no recursion). Runs of one level become one flat node.
    fn binary(&mut self) -> Result<Node, ExpressionError> {
        let mut operands = vec![self.unary()?];
        let mut operators: Vec<(Operator, usize)> = Vec::new();
        while let Some(operator) = binary_operator(&self.peek().kind) {
            while operators
                .last()
                .is_some_and(|(top, _)| top.level() >= operator.level())
            {
                reduce(&mut operands, &mut operators);
            }
            operators.push((operator, self.peek().start));
            self.next += 1;
            operands.push(self.unary()?);
        }
        while !operators.is_empty() {
            reduce(&mut operands, &mut operators);
        }
        Ok(operands.pop().unwrap_or(Node::Undefined))
    }

    /// `unary = ( "!" | "-" ) unary | postfix`
    fn unary(&mut self) -> Result<Node, ExpressionError> {
        match self.peek().kind {
            Tok::Not | Tok::Minus => self.prefix(),
            Tok::Plus => Err(ExpressionError::new(
                self.peek().start,
                "unary `+` is not supported",
            )),
            _ => self.postfix(),
        }
    }

    fn prefix(&mut self) -> Result<Node, ExpressionError> {
        let token = self.advance();
        self.enter(token.start)?;
        let operand = self.unary();
        self.leave();
        let operand = Box::new(operand?);
        Ok(match token.kind {
            Tok::Not => Node::Not(operand),
            _ => Node::Neg(operand),
        })
    }

    /// `postfix = primary { "." name [ "(" arguments ")" ] | "[" literal "]" }`
    fn postfix(&mut self) -> Result<Node, ExpressionError> {
        let base = self.primary()?;
        self.steps(base)
    }

    fn primary(&mut self) -> Result<Node, ExpressionError> {
        if self.peek().kind == Tok::LParen {
            self.group()
        } else {
            self.atom()
        }
    }

    /// `"(" expression ")"`
    fn group(&mut self) -> Result<Node, ExpressionError> {
        let open = self.advance().start;
        self.enter(open)?;
        let inner = self.expression();
        self.leave();
        let inner = inner?;
        self.expect(&Tok::RParen, "`)`")?;
        Ok(inner)
    }

    fn conditional(&mut self, test: Node) -> Result<Node, ExpressionError> {
        let question = self.advance().start;
        self.enter(question)?;
        let then = self.expression();
        self.leave();
        let then = then?;
        let colon = self.peek().start;
        self.expect(&Tok::Colon, "`:` of the conditional expression")?;
        self.enter(colon)?;
        let otherwise = self.expression();
        self.leave();
        Ok(Node::Conditional(
            Box::new(test),
            Box::new(then),
            Box::new(otherwise?),
        ))
    }

    /// A literal or a root name.
    fn atom(&mut self) -> Result<Node, ExpressionError> {
        let token = self.advance();
        Ok(match token.kind {
            Tok::Num(value) => Node::Num(value),
            Tok::Str(value) => Node::Str(value),
            Tok::Ident(name) => match name.as_str() {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                "null" => Node::Null,
                "undefined" => Node::Undefined,
                "context" => Node::Root(None),
                "field" => Node::Root(Some("field")),
                "workflow" => Node::Root(Some("workflow")),
                "query" => Node::Root(Some("query")),
                _ => {
                    return Err(ExpressionError::new(
                        token.start,
                        format!(
                            "unknown name `{name}`; values are read from `context.field`, \
                             `context.workflow` or `context.query`"
                        ),
                    ));
                }
            },
            _ => return Err(unexpected(&token, "expected a value")),
        })
    }

    /// Member accesses and method calls after `base`.
    fn steps(&mut self, base: Node) -> Result<Node, ExpressionError> {
        let mut steps = Vec::new();
        loop {
            let token = self.peek().clone();
            match token.kind {
                Tok::Dot => {
                    self.advance();
                    let name_token = self.advance();
                    let Tok::Ident(name) = name_token.kind else {
                        return Err(unexpected(
                            &name_token,
                            "expected a property name after `.`",
                        ));
                    };
                    check_property(&name, name_token.start)?;
                    if self.peek().kind == Tok::LParen {
                        steps.push(self.call(name, name_token.start)?);
                    } else {
                        steps.push(Step::Property {
                            name,
                            position: name_token.start,
                        });
                    }
                }
                Tok::LBracket => {
                    self.advance();
                    let key_token = self.advance();
                    let name = match key_token.kind {
                        Tok::Str(name) => name,
                        Tok::Num(number) => number_to_string(number),
                        _ => {
                            return Err(unexpected(
                                &key_token,
                                "only a string or number literal can go inside `[ ]`",
                            ));
                        }
                    };
                    check_property(&name, key_token.start)?;
                    self.expect(&Tok::RBracket, "`]`")?;
                    steps.push(Step::Property {
                        name,
                        position: key_token.start,
                    });
                }
                Tok::LParen => {
                    return Err(ExpressionError::new(
                        token.start,
                        format!("only the methods {} can be called", method_list()),
                    ));
                }
                _ => break,
            }
        }
        Ok(if steps.is_empty() {
            base
        } else {
            Node::Path(Box::new(base), steps)
        })
    }

    /// A method call; the current token is its `(`.
    fn call(&mut self, name: String, position: usize) -> Result<Step, ExpressionError> {
        let Some(method) = Method::ALL.into_iter().find(|m| m.name() == name) else {
            return Err(ExpressionError::new(
                position,
                format!(
                    "unknown method `{name}`; only {} can be called",
                    method_list()
                ),
            ));
        };
        let open = self.advance().start;
        self.enter(open)?;
        let args = self.arguments();
        self.leave();
        let args = args?;
        if args.len() != method.arity() {
            return Err(ExpressionError::new(
                position,
                format!(
                    "`{name}` takes {} argument{}, not {}",
                    method.arity(),
                    if method.arity() == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        Ok(Step::Call {
            method,
            args,
            position,
        })
    }

    /// `[ expression { "," expression } ] ")"`, after the `(`.
    fn arguments(&mut self) -> Result<Vec<Node>, ExpressionError> {
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            if self.eat(&Tok::RParen) {
                return Ok(args);
            }
            self.expect(&Tok::Comma, "`,` or `)`")?;
        }
    }
}

/// "`context` found `)`"-style error at `found`.
#[cold]
fn unexpected(found: &Token, context: &str) -> ExpressionError {
    ExpressionError::new(
        found.start,
        format!("{context}, found {}", found.kind.describe()),
    )
}

fn check_property(name: &str, position: usize) -> Result<(), ExpressionError> {
    if FORBIDDEN_PROPERTIES.contains(&name) {
        return Err(ExpressionError::new(
            position,
            format!("the property name `{name}` is not allowed"),
        ));
    }
    Ok(())
}

/// Binary precedence levels, loosest first (JavaScript's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Or,
    And,
    Equality,
    Relational,
    Additive,
    Multiplicative,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Or,
    And,
    Binary(BinaryOp),
}

impl Operator {
    fn level(self) -> Level {
        match self {
            Operator::Or => Level::Or,
            Operator::And => Level::And,
            Operator::Binary(op) => op.level(),
        }
    }
}

impl BinaryOp {
    fn level(self) -> Level {
        match self {
            BinaryOp::LooseEq | BinaryOp::LooseNe | BinaryOp::StrictEq | BinaryOp::StrictNe => {
                Level::Equality
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => Level::Relational,
            BinaryOp::Add | BinaryOp::Sub => Level::Additive,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Level::Multiplicative,
        }
    }
}

fn binary_operator(tok: &Tok) -> Option<Operator> {
    Some(match tok {
        Tok::Or => Operator::Or,
        Tok::And => Operator::And,
        Tok::LooseEq => Operator::Binary(BinaryOp::LooseEq),
        Tok::LooseNe => Operator::Binary(BinaryOp::LooseNe),
        Tok::StrictEq => Operator::Binary(BinaryOp::StrictEq),
        Tok::StrictNe => Operator::Binary(BinaryOp::StrictNe),
        Tok::Lt => Operator::Binary(BinaryOp::Lt),
        Tok::Le => Operator::Binary(BinaryOp::Le),
        Tok::Gt => Operator::Binary(BinaryOp::Gt),
        Tok::Ge => Operator::Binary(BinaryOp::Ge),
        Tok::Plus => Operator::Binary(BinaryOp::Add),
        Tok::Minus => Operator::Binary(BinaryOp::Sub),
        Tok::Star => Operator::Binary(BinaryOp::Mul),
        Tok::Slash => Operator::Binary(BinaryOp::Div),
        Tok::Percent => Operator::Binary(BinaryOp::Rem),
        _ => return None,
    })
}

/// Applies the top operator to the top two operands. All these operators are left associative
/// and evaluated left to right, so a left operand of the same level is extended rather than
/// nested: `a - b + c` becomes one chain, `a || b || c` one `Or`.
fn reduce(operands: &mut Vec<Node>, operators: &mut Vec<(Operator, usize)>) {
    let (Some((operator, position)), Some(right), Some(left)) =
        (operators.pop(), operands.pop(), operands.pop())
    else {
        // The parser pushes one operand more than it pushes operators.
        return;
    };
    let combined = match (operator, left) {
        (Operator::Or, Node::Or(mut items)) => {
            items.push(right);
            Node::Or(items)
        }
        (Operator::And, Node::And(mut items)) => {
            items.push(right);
            Node::And(items)
        }
        (Operator::Or, left) => Node::Or(vec![left, right]),
        (Operator::And, left) => Node::And(vec![left, right]),
        (Operator::Binary(op), Node::Chain(first, mut rest))
            if rest.first().is_some_and(|o| o.op.level() == op.level()) =>
        {
            rest.push(Operation {
                op,
                position,
                operand: right,
            });
            Node::Chain(first, rest)
        }
        (Operator::Binary(op), left) => Node::Chain(
            Box::new(left),
            vec![Operation {
                op,
                position,
                operand: right,
            }],
        ),
    };
    operands.push(combined);
}

fn method_list() -> String {
    Method::ALL
        .iter()
        .map(|m| format!("`{}`", m.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Values

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

/// JavaScript Number::toString (radix 10): the shortest round-tripping digits, written
/// positionally for exponents in [-7, 20] and in exponent form otherwise.
fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n < 0.0 {
        return format!("-{}", number_to_string(-n));
    }
    // Rust's `{:e}` without a precision gives the shortest round-tripping digits: "d.ddde±x".
    let formatted = format!("{n:e}");
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let point = exponent.parse::<i64>().unwrap_or(0) + 1;
    if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let sign = if point > 0 { '+' } else { '-' };
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!("{first}{rest}e{sign}{}", (point - 1).abs())
    }
}

/// JavaScript StringToNumber: surrounding whitespace ignored, empty is 0, decimal literals with
/// an optional sign, `Infinity`, and unsigned `0x`/`0o`/`0b` integers; anything else is NaN.
fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_whitespace);
    if s.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = s.strip_prefix(prefix) {
            if digits.is_empty() {
                return f64::NAN;
            }
            return digits
                .chars()
                .try_fold(0.0_f64, |acc, c| {
                    c.to_digit(radix)
                        .map(|d| acc * f64::from(radix) + f64::from(d))
                })
                .unwrap_or(f64::NAN);
        }
    }
    let (negative, unsigned) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = if unsigned == "Infinity" {
        f64::INFINITY
    } else if is_decimal_literal(unsigned) {
        unsigned.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        return f64::NAN;
    };
    if negative { -magnitude } else { magnitude }
}

/// `digits [. digits*] [exp] | . digits [exp]`, where `exp = (e|E) [+-] digits`.
fn is_decimal_literal(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let count_digits = |i: &mut usize| {
        let from = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let mut mantissa_digits = count_digits(&mut i);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        mantissa_digits += count_digits(&mut i);
    }
    if mantissa_digits == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if count_digits(&mut i) == 0 {
            return false;
        }
    }
    i == bytes.len()
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

fn json_equal(a: &Value, b: &Value) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Evaluation

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
    use super::*;
    use serde_json::json;

    const VECTORS: &str = include_str!("../../tests/vectors/visibility.json");

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
    fn nesting_limit_applies_to_parentheses_unary_operators_and_branches() {
        let parens = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert!(Expression::parse(&parens(MAX_NESTING)).is_ok());
        let error = Expression::parse(&parens(MAX_NESTING + 1)).expect_err("too deep");
        assert_eq!(error.position, MAX_NESTING);
        assert!(error.message.contains("nested"));

        assert!(Expression::parse(&format!("{}1", "!".repeat(MAX_NESTING))).is_ok());
        assert!(Expression::parse(&format!("{}1", "!".repeat(MAX_NESTING + 1))).is_err());

        let ternaries = |n: usize| format!("{}0", "1 ? 1 : ".repeat(n));
        assert!(Expression::parse(&ternaries(MAX_NESTING)).is_ok());
        assert!(Expression::parse(&ternaries(MAX_NESTING + 1)).is_err());

        let calls = |n: usize| format!("{}'a'{}", "'a'.includes(".repeat(n), ")".repeat(n));
        assert!(Expression::parse(&calls(MAX_NESTING)).is_ok());
        assert!(Expression::parse(&calls(MAX_NESTING + 1)).is_err());
    }

    #[test]
    fn long_flat_chains_do_not_count_as_nesting() {
        let source = vec!["context.field.a == 1"; 70].join(" || ");
        let expression = Expression::parse(&source).expect("flat chain");
        assert!(expression.is_visible(&json!({"field": {"a": 1}})));
        assert!(!expression.is_visible(&json!({"field": {"a": 2}})));
        let sum = vec!["1"; 900].join("+");
        let value = Expression::parse(&sum).expect("sum").evaluate(&json!({}));
        assert_eq!(value, Ok(json!(900)));
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

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-0.0, "0"),
        ];
        for (n, text) in cases {
            assert_eq!(number_to_string(n), text);
        }
    }

    #[test]
    fn strings_convert_to_numbers_as_javascript_converts_them() {
        let cases = [
            ("", 0.0),
            ("  42\n", 42.0),
            ("-1.5e2", -150.0),
            ("+.5", 0.5),
            ("5.", 5.0),
            ("0x1F", 31.0),
            ("0b101", 5.0),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (text, n) in cases {
            assert_eq!(string_to_number(text), n, "{text:?}");
        }
        for text in [
            "abc", "1e", "-0x1", "infinity", "1_000", ".", "1 2", "inf", "NaN",
        ] {
            assert!(string_to_number(text).is_nan(), "{text:?}");
        }
    }
}
