//! The typed query filter: comparisons of a column with a typed [`Value`], combined with
//! and/or/not. The only way to express a table query in Bifrost.
//!
//! Must not depend on a backend. Invariants: no caller-supplied text is ever concatenated into
//! OData unescaped — string literals are quoted with `'` doubled, property names are validated
//! identifiers, and other literals are rendered from typed values; the in-process evaluator
//! ([`Filter::matches`]) gives the answer Azure gives: a comparison with a missing property or a
//! value of another type is false.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::error::{StoreError, StoreResult};
use crate::table::model::{Entity, Value, format_datetime, truncate_datetime};
use crate::table::validate::validate_property_name;

/// Azure allows at most 15 discrete comparisons in one `$filter`.
pub const MAX_COMPARISONS: usize = 15;

/// What a comparison looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    PartitionKey,
    RowKey,
    Timestamp,
    /// A user property, by (case-sensitive) name.
    Property(String),
}

/// Shorthand for [`Column::Property`].
pub fn prop(name: impl Into<String>) -> Column {
    Column::Property(name.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn odata(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
        }
    }
}

macro_rules! comparisons {
    ($($method:ident => $op:ident),*) => {
        impl Column {
            $(
                pub fn $method(self, value: impl Into<Value>) -> Filter {
                    Filter::Compare { column: self, op: CmpOp::$op, value: value.into() }
                }
            )*
        }
    };
}
comparisons!(eq => Eq, ne => Ne, gt => Gt, ge => Ge, lt => Lt, le => Le);

/// A typed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare {
        column: Column,
        op: CmpOp,
        value: Value,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    #[allow(clippy::should_implement_trait)] // `!f` works too; the method reads better in chains
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }

    /// Number of comparisons (Azure counts these against its limit of 15).
    pub fn comparisons(&self) -> usize {
        match self {
            Filter::Compare { .. } => 1,
            Filter::And(a, b) | Filter::Or(a, b) => a.comparisons() + b.comparisons(),
            Filter::Not(a) => a.comparisons(),
        }
    }

    /// Checks names, value types and limits; both backends call this before doing anything.
    pub(crate) fn validate(&self) -> StoreResult<()> {
        if self.comparisons() > MAX_COMPARISONS {
            return Err(StoreError::invalid(
                "filter",
                format!(
                    "has {} comparisons; at most {MAX_COMPARISONS} are allowed",
                    self.comparisons()
                ),
            ));
        }
        self.validate_inner()
    }

    fn validate_inner(&self) -> StoreResult<()> {
        match self {
            Filter::Compare { column, value, .. } => {
                match (column, value) {
                    (Column::PartitionKey | Column::RowKey, Value::String(_)) => {}
                    (Column::PartitionKey, _) => {
                        return Err(StoreError::invalid(
                            "filter",
                            "PartitionKey compares only with a string",
                        ));
                    }
                    (Column::RowKey, _) => {
                        return Err(StoreError::invalid(
                            "filter",
                            "RowKey compares only with a string",
                        ));
                    }
                    (Column::Timestamp, Value::DateTime(_)) => {}
                    (Column::Timestamp, _) => {
                        return Err(StoreError::invalid(
                            "filter",
                            "Timestamp compares only with a DateTime",
                        ));
                    }
                    (Column::Property(name), _) => validate_property_name(name)?,
                }
                if let Value::Double(d) = value
                    && !d.is_finite()
                {
                    return Err(StoreError::invalid(
                        "filter",
                        "Double literals must be finite",
                    ));
                }
                Ok(())
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.validate_inner()?;
                b.validate_inner()
            }
            Filter::Not(a) => a.validate_inner(),
        }
    }

    /// The OData `$filter` text. Call only on a validated filter.
    pub(crate) fn to_odata(&self) -> String {
        let mut out = String::new();
        self.write_odata(&mut out);
        out
    }

    fn write_odata(&self, out: &mut String) {
        match self {
            Filter::Compare { column, op, value } => {
                out.push_str(match column {
                    Column::PartitionKey => "PartitionKey",
                    Column::RowKey => "RowKey",
                    Column::Timestamp => "Timestamp",
                    Column::Property(name) => name,
                });
                out.push(' ');
                out.push_str(op.odata());
                out.push(' ');
                write_literal(value, out);
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                out.push('(');
                a.write_odata(out);
                out.push_str(if matches!(self, Filter::And(..)) {
                    ") and ("
                } else {
                    ") or ("
                });
                b.write_odata(out);
                out.push(')');
            }
            Filter::Not(a) => {
                out.push_str("not (");
                a.write_odata(out);
                out.push(')');
            }
        }
    }

    /// Evaluates the filter against an entity the way Azure Tables does.
    pub fn matches(&self, entity: &Entity) -> bool {
        match self {
            Filter::Compare { column, op, value } => {
                let ord = match (column, value) {
                    (Column::PartitionKey, Value::String(s)) => {
                        Some(entity.partition_key.as_str().cmp(s.as_str()))
                    }
                    (Column::RowKey, Value::String(s)) => {
                        Some(entity.row_key.as_str().cmp(s.as_str()))
                    }
                    (Column::Timestamp, Value::DateTime(d)) => {
                        entity.timestamp.map(|t| t.cmp(&truncate_datetime(*d)))
                    }
                    (Column::Property(name), v) => entity
                        .properties
                        .get(name)
                        .and_then(|stored| compare(stored, v)),
                    _ => None,
                };
                ord.is_some_and(|o| op.holds(o))
            }
            Filter::And(a, b) => a.matches(entity) && b.matches(entity),
            Filter::Or(a, b) => a.matches(entity) || b.matches(entity),
            Filter::Not(a) => !a.matches(entity),
        }
    }
}

impl std::ops::BitAnd for Filter {
    type Output = Filter;
    fn bitand(self, rhs: Filter) -> Filter {
        self.and(rhs)
    }
}

impl std::ops::BitOr for Filter {
    type Output = Filter;
    fn bitor(self, rhs: Filter) -> Filter {
        self.or(rhs)
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

/// Orders a stored value against a literal; `None` when the types differ (the comparison is
/// then false, whatever the operator).
fn compare(stored: &Value, literal: &Value) -> Option<Ordering> {
    match (stored, literal) {
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Int32(a), Value::Int32(b)) => Some(a.cmp(b)),
        (Value::Int64(a), Value::Int64(b)) => Some(a.cmp(b)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        (Value::DateTime(a), Value::DateTime(b)) => {
            Some(truncate_datetime(*a).cmp(&truncate_datetime(*b)))
        }
        (Value::Guid(a), Value::Guid(b)) => Some(a.cmp(b)),
        (Value::Binary(a), Value::Binary(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn write_literal(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Value::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int64(v) => {
            let _ = write!(out, "{v}L");
        }
        Value::Double(v) => {
            // Display never uses an exponent (Azurite's lexer accepts none) and round-trips;
            // a decimal point keeps the literal from reading as Int32.
            let text = format!("{v}");
            out.push_str(&text);
            if !text.contains('.') {
                out.push_str(".0");
            }
        }
        Value::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
        Value::DateTime(v) => {
            let _ = write!(out, "datetime'{}'", format_datetime(*v));
        }
        Value::Guid(v) => {
            let _ = write!(out, "guid'{}'", v.hyphenated());
        }
        Value::Binary(bytes) => {
            out.push_str("X'");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
            out.push('\'');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::keys::{PartitionKey, RowKey};

    #[test]
    fn renders_escaped_odata() {
        let f = Column::PartitionKey.eq("x' or PartitionKey ne '") & prop("N").gt(5i64).not()
            | prop("D").le(2.0);
        assert_eq!(
            f.to_odata(),
            "((PartitionKey eq 'x'' or PartitionKey ne ''') and (not (N gt 5L))) or (D le 2.0)"
        );
        let g = prop("B").eq(vec![0x0au8, 0xff]) & prop("G").ne(uuid::Uuid::nil());
        assert_eq!(
            g.to_odata(),
            "(B eq X'0aff') and (G ne guid'00000000-0000-0000-0000-000000000000')"
        );
    }

    #[test]
    fn rejects_bad_names_types_and_too_many_comparisons() {
        assert!(
            prop("a-b")
                .eq(1)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("a-b")
        );
        assert!(Column::PartitionKey.eq(1).validate().is_err());
        assert!(prop("D").eq(f64::NAN).validate().is_err());
        let mut f = prop("A").eq(0);
        for i in 1..16 {
            f = f.or(prop("A").eq(i));
        }
        assert!(f.validate().unwrap_err().to_string().contains("15"));
    }

    #[test]
    fn missing_or_mistyped_properties_compare_false() {
        let e =
            Entity::new(PartitionKey::new("p").unwrap(), RowKey::new("r").unwrap()).with("N", 5i32);
        assert!(prop("N").eq(5).matches(&e));
        assert!(!prop("N").eq(5i64).matches(&e));
        assert!(!prop("N").ne(5i64).matches(&e));
        assert!(!prop("M").ne(1).matches(&e));
        assert!(prop("M").ne(1).not().matches(&e));
    }
}
