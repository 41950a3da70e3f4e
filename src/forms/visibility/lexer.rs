//! The visibility language's lexer: the whole source into tokens, each with the byte offset it
//! starts at, before any parsing (so a lexical error is reported before a grammar error).
//!
//! JavaScript's lexical grammar for the subset: decimal numbers only (no leading zeros, no
//! `0x`), single- and double-quoted strings with JavaScript's escapes (`\u` surrogate pairs
//! joined, lone surrogates refused), identifiers of ASCII letters, digits, `_` and `$`, and the
//! operators the parser knows. Depends only on the error type in `mod.rs`.

use super::ExpressionError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
    pub(super) fn describe(&self) -> String {
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
pub(super) struct Token {
    pub(super) kind: Tok,
    pub(super) start: usize,
}

/// JavaScript's WhiteSpace and LineTerminator: Rust's White_Space minus U+0085, plus U+FEFF.
pub(super) fn is_js_whitespace(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}'
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

pub(super) fn lex(source: &str) -> Result<Vec<Token>, ExpressionError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_source_is_tokenized_before_parsing() {
        // A grammar error (the missing `)`) comes after the lexical one, which wins.
        let error = lex("(1 + 'abc").expect_err("unterminated");
        assert_eq!(error.position, 5);
        assert!(error.message.contains("unterminated string"), "{error}");
        let tokens = lex("a.b === 'é' && 1.5e3").expect("lexes");
        let starts: Vec<usize> = tokens.iter().map(|t| t.start).collect();
        assert_eq!(starts, [0, 1, 2, 4, 8, 13, 16, 21]);
        assert_eq!(tokens.last().map(|t| &t.kind), Some(&Tok::Eof));
    }
}
