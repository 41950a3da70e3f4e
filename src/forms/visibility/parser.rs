//! The visibility language's parser: tokens into a syntax tree, refusing at parse time every
//! syntax the language does not have (so a form is rejected when saved, not when shown).
//!
//! Binary operators are parsed with explicit operand/operator stacks, and a run of one
//! precedence level becomes one flat node ([`Node::Chain`], [`Node::And`], [`Node::Or`]), as
//! member paths do ([`Node::Path`]): recursion is bounded by [`MAX_NESTING`], which counts
//! parentheses, unary operators, conditional branches and method arguments. Property names
//! that reach a prototype are refused here, so they never reach the evaluator. Depends on the
//! lexer's tokens and on `numbers` (a numeric key such as `a[1]` names property `"1"`).

use super::lexer::{Tok, Token};
use super::numbers::number_to_string;
use super::{ExpressionError, MAX_NESTING};

/// Property names that would reach an object's prototype in a naive browser implementation.
const FORBIDDEN_PROPERTIES: [&str; 3] = ["__proto__", "constructor", "prototype"];

/// The syntax tree of `tokens` (which end with `Eof`); anything after a whole expression is an
/// error.
pub(super) fn parse(tokens: Vec<Token>) -> Result<Node, ExpressionError> {
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
    Ok(root)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
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
pub(super) struct Operation {
    pub(super) op: BinaryOp,
    pub(super) position: usize,
    pub(super) operand: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
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
pub(super) enum BinaryOp {
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
pub(super) enum Method {
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

    pub(super) fn name(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Expression, MAX_NESTING};

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
}
