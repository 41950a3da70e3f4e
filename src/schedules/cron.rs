//! Cron expressions: parsing, next run times, a human-readable description and warnings.
//!
//! Accepts five fields (`minute hour day-of-month month day-of-week`, what
//! `@workflow(schedule=...)` uses, as in v1) and six fields with a leading seconds field
//! (NCRONTAB, the Azure Functions timer format), plus the `@hourly`/`@daily`/`@weekly`/
//! `@monthly`/`@yearly` macros. Each field takes `*`, `?` (day fields), values, `a-b` ranges,
//! `/n` steps and comma lists; months and weekdays also take English names (`JAN`, `mon`).
//! Seven-field expressions (with a year) are rejected, as v1 did.
//!
//! Pure computation: depends on `time` only, no storage, no HTTP. Invariants: every error names
//! the field and the offending token; a parsed [`Cron`] always matches some instant (an
//! impossible date such as `0 0 30 2 *` is a parse error), so [`Cron::next_after`] only gives
//! up after a bounded search; all instants are UTC. Day matching follows Vixie cron: when both
//! day-of-month and day-of-week are restricted (neither starts with `*`), a day matching either
//! one fires.

use std::fmt::Write as _;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Runs closer together than this many seconds earn a warning (v1's threshold).
pub const SHORT_INTERVAL_SECONDS: i64 = 300;

/// How many upcoming runs [`Cron::min_interval`] samples by default.
pub const INTERVAL_SAMPLES: usize = 24;

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("the cron expression is empty")]
    Empty,
    #[error(
        "the cron expression has {0} fields; expected 5 (minute hour day-of-month month \
         day-of-week) or 6 (second minute hour day-of-month month day-of-week)"
    )]
    FieldCount(usize),
    #[error(
        "unknown cron macro '{0}'; expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
    )]
    UnknownMacro(String),
    #[error("invalid {field} field: '{token}' {reason}")]
    Field {
        field: &'static str,
        token: String,
        reason: String,
    },
    #[error("the cron expression never matches a real date: {0}")]
    Impossible(String),
}

impl CronError {
    /// The cron field at fault, when one is (`minute`, `day-of-week`, ...).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            CronError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// One comma-separated item of a field, as written (kept for the description).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Value(u32),
    Range(u32, u32),
    /// `start-end/step`; `full` when written as `*/step` (the whole range).
    Step {
        start: u32,
        end: u32,
        step: u32,
        full: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    name: &'static str,
    unit: &'static str,
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
}

const SECOND: Spec = Spec {
    name: "second",
    unit: "second",
    min: 0,
    max: 59,
    names: None,
};
const MINUTE: Spec = Spec {
    name: "minute",
    unit: "minute",
    min: 0,
    max: 59,
    names: None,
};
const HOUR: Spec = Spec {
    name: "hour",
    unit: "hour",
    min: 0,
    max: 23,
    names: None,
};
const DAY: Spec = Spec {
    name: "day-of-month",
    unit: "day",
    min: 1,
    max: 31,
    names: None,
};
const MONTH: Spec = Spec {
    name: "month",
    unit: "month",
    min: 1,
    max: 12,
    names: Some(&MONTH_NAMES),
};
// 7 is accepted as Sunday and folded onto 0 when the set is built.
const WEEKDAY: Spec = Spec {
    name: "day-of-week",
    unit: "day of the week",
    min: 0,
    max: 7,
    names: Some(&DAY_NAMES),
};

/// One parsed field: the matching values as a bit set, and how it was written.
#[derive(Clone, Debug)]
struct Field {
    bits: u64,
    /// `None` for `*`/`?`.
    items: Option<Vec<Item>>,
    /// Starts with `*` or `?` (Vixie's rule for combining the two day fields).
    starred: bool,
}

impl Field {
    fn all(spec: &Spec) -> Self {
        Field {
            bits: range_bits(spec.min, spec.max, 1),
            items: None,
            starred: true,
        }
    }

    fn has(&self, value: u32) -> bool {
        value < 64 && self.bits & (1 << value) != 0
    }

    fn single(&self) -> Option<u32> {
        match self.items.as_deref() {
            Some([Item::Value(v)]) => Some(*v),
            _ => None,
        }
    }

    /// `*/n`: every n-th value of the whole range.
    fn full_step(&self) -> Option<u32> {
        match self.items.as_deref() {
            Some(
                [
                    Item::Step {
                        step, full: true, ..
                    },
                ],
            ) => Some(*step),
            _ => None,
        }
    }
}

fn range_bits(start: u32, end: u32, step: u32) -> u64 {
    (start..=end)
        .step_by(step.max(1) as usize)
        .fold(0u64, |acc, v| acc | (1 << v))
}

/// A parsed cron expression.
#[derive(Clone, Debug)]
pub struct Cron {
    source: String,
    has_seconds: bool,
    second: Field,
    minute: Field,
    hour: Field,
    day: Field,
    month: Field,
    weekday: Field,
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

impl Cron {
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        let expanded = if let Some(name) = trimmed.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(CronError::UnknownMacro(trimmed.to_owned())),
            }
        } else {
            trimmed
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let (has_seconds, rest) = match parts.len() {
            5 => (false, &parts[..]),
            6 => (true, &parts[1..]),
            n => return Err(CronError::FieldCount(n)),
        };
        let second = if has_seconds {
            parse_field(parts[0], &SECOND, false)?
        } else {
            Field {
                bits: 1,
                items: Some(vec![Item::Value(0)]),
                starred: false,
            }
        };
        let minute = parse_field(rest[0], &MINUTE, false)?;
        let hour = parse_field(rest[1], &HOUR, false)?;
        let day = parse_field(rest[2], &DAY, true)?;
        let month = parse_field(rest[3], &MONTH, false)?;
        let mut weekday = parse_field(rest[4], &WEEKDAY, true)?;
        if weekday.bits & (1 << 7) != 0 {
            weekday.bits = (weekday.bits & !(1 << 7)) | 1;
        }
        let cron = Cron {
            source: trimmed.to_owned(),
            has_seconds,
            second,
            minute,
            hour,
            day,
            month,
            weekday,
        };
        cron.check_possible()?;
        Ok(cron)
    }

    /// The expression as given (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression has a seconds field (six fields).
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// With only day-of-month restricting days, some selected month must have a selected day.
    fn check_possible(&self) -> Result<(), CronError> {
        if self.day.starred || !self.weekday.starred {
            return Ok(());
        }
        let possible = (1..=12u32).filter(|m| self.month.has(*m)).any(|m| {
            let longest = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            (1..=longest).any(|d| self.day.has(d))
        });
        if possible {
            Ok(())
        } else {
            Err(CronError::Impossible(format!(
                "no selected month has the selected day-of-month in '{}'",
                self.source
            )))
        }
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.day.has(u32::from(date.day()));
        let dow = self
            .weekday
            .has(u32::from(date.weekday().number_days_from_sunday()));
        if self.day.starred || self.weekday.starred {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first run strictly after `after` (UTC), or `None` if none within the search bound
    /// (only possible near the end of `time`'s calendar).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(UtcOffset::UTC);
        let truncated = after.replace_nanosecond(0).ok()?;
        let mut t = PrimitiveDateTime::new(truncated.date(), truncated.time())
            .checked_add(time::Duration::SECOND)?;
        // Feb 29 with a restricted weekday can be 8 years away (2096 -> 2104); stay bounded.
        let limit = t.year() + 12;
        loop {
            if t.year() > limit {
                return None;
            }
            let date = t.date();
            if !self.month.has(u32::from(u8::from(date.month()))) {
                let (year, month) = match date.month() {
                    Month::December => (date.year() + 1, Month::January),
                    m => (date.year(), m.next()),
                };
                t = PrimitiveDateTime::new(
                    Date::from_calendar_date(year, month, 1).ok()?,
                    Time::MIDNIGHT,
                );
                continue;
            }
            if !self.day_matches(date) {
                t = PrimitiveDateTime::new(date.next_day()?, Time::MIDNIGHT);
                continue;
            }
            if !self.hour.has(u32::from(t.hour())) {
                t = PrimitiveDateTime::new(date, Time::from_hms(t.hour(), 0, 0).ok()?)
                    .checked_add(time::Duration::HOUR)?;
                continue;
            }
            if !self.minute.has(u32::from(t.minute())) {
                t = PrimitiveDateTime::new(date, Time::from_hms(t.hour(), t.minute(), 0).ok()?)
                    .checked_add(time::Duration::MINUTE)?;
                continue;
            }
            if !self.second.has(u32::from(t.second())) {
                t = t.checked_add(time::Duration::SECOND)?;
                continue;
            }
            return Some(t.assume_utc());
        }
    }

    /// The next `count` runs strictly after `after`.
    pub fn next_runs(&self, after: OffsetDateTime, count: usize) -> Vec<OffsetDateTime> {
        let mut runs = Vec::with_capacity(count);
        let mut cursor = after;
        while runs.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    runs.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        runs
    }

    /// The shortest gap, in seconds, between consecutive runs among the next `samples + 1`
    /// runs after `after`; `None` when fewer than two runs exist.
    pub fn min_interval(&self, after: OffsetDateTime, samples: usize) -> Option<i64> {
        self.next_runs(after, samples + 1)
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).whole_seconds())
            .min()
    }

    /// A warning when the schedule fires very often (v1 warned below five minutes).
    pub fn warning(&self, after: OffsetDateTime) -> Option<String> {
        let interval = self.min_interval(after, INTERVAL_SAMPLES)?;
        if interval <= 1 {
            Some(
                "This schedule runs every second; that will overload the platform. \
                 Use an interval of at least 5 minutes."
                    .to_owned(),
            )
        } else if interval < SHORT_INTERVAL_SECONDS && self.minute.items.is_none() {
            Some(format!(
                "This schedule runs every minute (as often as every {}); intervals under 5 \
                 minutes can overload the platform.",
                seconds_text(interval)
            ))
        } else if interval < SHORT_INTERVAL_SECONDS {
            Some(format!(
                "This schedule runs as often as every {}; intervals under 5 minutes can \
                 overload the platform.",
                seconds_text(interval)
            ))
        } else {
            None
        }
    }

    /// An English description such as "Every 5 minutes" or "At 09:30 on Monday through Friday".
    pub fn describe(&self) -> String {
        let mut text = self.describe_time();
        let days = self.describe_days();
        if !days.is_empty() {
            text.push(' ');
            text.push_str(&days);
        }
        text
    }

    fn seconds_zero(&self) -> bool {
        self.second.single() == Some(0)
    }

    fn describe_time(&self) -> String {
        let (sec, min, hour) = (&self.second, &self.minute, &self.hour);
        if let (Some(s), Some(m), Some(h)) = (sec.single(), min.single(), hour.single()) {
            return clock(h, m, s);
        }
        if hour.items.is_none() && min.items.is_none() {
            if self.seconds_zero() {
                return "Every minute".to_owned();
            }
            if sec.items.is_none() {
                return "Every second".to_owned();
            }
            if let Some(n) = sec.full_step() {
                return format!("Every {n} seconds");
            }
        }
        if hour.items.is_none() && self.seconds_zero() {
            if let Some(n) = min.full_step() {
                return if n == 1 {
                    "Every minute".to_owned()
                } else {
                    format!("Every {n} minutes")
                };
            }
            if min.single() == Some(0) {
                return "Every hour".to_owned();
            }
        }
        // Fixed minute and second over a short list of hours: "At 09:00 and 17:00".
        if let (Some(s), Some(m), Some(items)) = (sec.single(), min.single(), hour.items.as_ref())
            && items.len() <= 4
            && items.iter().all(|i| matches!(i, Item::Value(_)))
        {
            let times: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Value(h) => Some(clock(*h, m, s)[3..].to_owned()),
                    _ => None,
                })
                .collect();
            return format!("At {}", join_and(&times));
        }
        let mut parts = Vec::new();
        if !self.seconds_zero() {
            parts.push(field_text(sec, &SECOND));
        }
        parts.push(field_text(min, &MINUTE));
        parts.push(field_text(hour, &HOUR));
        format!("At {}", parts.join(" past "))
    }

    fn describe_days(&self) -> String {
        let mut out = String::new();
        let day = (!self.day.starred || self.day.items.is_some()).then(|| day_text(&self.day));
        let weekday = (!self.weekday.starred || self.weekday.items.is_some())
            .then(|| weekday_text(&self.weekday));
        match (day, weekday) {
            (Some(d), Some(w)) => {
                let joiner = if self.day.starred || self.weekday.starred {
                    "and"
                } else {
                    "or"
                };
                let _ = write!(out, "on {d} {joiner} on {w}");
            }
            (Some(d), None) => {
                let _ = write!(out, "on {d}");
            }
            (None, Some(w)) => {
                let _ = write!(out, "on {w}");
            }
            (None, None) => {}
        }
        if self.month.items.is_some() {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "in {}", month_text(&self.month));
        }
        out
    }
}

fn clock(h: u32, m: u32, s: u32) -> String {
    if s == 0 {
        format!("At {h:02}:{m:02}")
    } else {
        format!("At {h:02}:{m:02}:{s:02}")
    }
}

fn seconds_text(seconds: i64) -> String {
    match seconds {
        1 => "second".to_owned(),
        60 => "minute".to_owned(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn value_name(spec: &Spec, v: u32) -> String {
    match spec.names {
        // Weekday 7 is Sunday again.
        Some(names) => names
            .get(((v - spec.min) as usize) % names.len())
            .map_or_else(|| v.to_string(), |n| (*n).to_owned()),
        None => v.to_string(),
    }
}

fn item_text(item: &Item, spec: &Spec) -> String {
    match *item {
        Item::Value(v) => value_name(spec, v),
        Item::Range(a, b) => format!("{} through {}", value_name(spec, a), value_name(spec, b)),
        Item::Step {
            start,
            end,
            step,
            full,
        } => {
            let every = if step == 1 {
                format!("every {}", spec.unit)
            } else {
                format!("every {} {}", ordinal(step), spec.unit)
            };
            if full {
                every
            } else {
                format!(
                    "{every} from {} through {}",
                    value_name(spec, start),
                    value_name(spec, end)
                )
            }
        }
    }
}

/// Time fields, crontab.guru style: "every minute", "minute 5", "every 2nd hour",
/// "every hour from 9 through 17", "minute 0, 15 and 30".
fn field_text(field: &Field, spec: &Spec) -> String {
    let Some(items) = field.items.as_ref() else {
        return format!("every {}", spec.unit);
    };
    match items.as_slice() {
        [Item::Value(v)] => format!("{} {v}", spec.unit),
        [Item::Range(a, b)] => format!("every {} from {a} through {b}", spec.unit),
        [step @ Item::Step { .. }] => item_text(step, spec),
        many => {
            let texts: Vec<String> = many.iter().map(|i| item_text(i, spec)).collect();
            format!("{} {}", spec.unit, join_and(&texts))
        }
    }
}

fn day_text(field: &Field) -> String {
    match field.items.as_deref() {
        None => "every day of the month".to_owned(),
        Some([Item::Value(v)]) => format!("day {v} of the month"),
        Some([step @ Item::Step { .. }]) => format!("{} of the month", item_text(step, &DAY)),
        Some(items) => {
            let texts: Vec<String> = items.iter().map(|i| item_text(i, &DAY)).collect();
            format!("days {} of the month", join_and(&texts))
        }
    }
}

fn weekday_text(field: &Field) -> String {
    match field.items.as_deref() {
        None => "every day of the week".to_owned(),
        Some(items) => {
            let texts: Vec<String> = items.iter().map(|i| item_text(i, &WEEKDAY)).collect();
            join_and(&texts)
        }
    }
}

fn month_text(field: &Field) -> String {
    match field.items.as_deref() {
        None => "every month".to_owned(),
        Some(items) => {
            let texts: Vec<String> = items.iter().map(|i| item_text(i, &MONTH)).collect();
            join_and(&texts)
        }
    }
}

fn parse_field(text: &str, spec: &Spec, question_mark: bool) -> Result<Field, CronError> {
    let err = |token: &str, reason: String| CronError::Field {
        field: spec.name,
        token: token.to_owned(),
        reason,
    };
    if text == "*" || (question_mark && text == "?") {
        return Ok(Field::all(spec));
    }
    let starred = text.starts_with('*') || (question_mark && text.starts_with('?'));
    let mut bits = 0u64;
    let mut items = Vec::new();
    for token in text.split(',') {
        if token.is_empty() {
            return Err(err(text, "has an empty list item".to_owned()));
        }
        let (range, step) = match token.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| {
                    err(
                        token,
                        format!("has a step '{step}' that is not a whole number"),
                    )
                })?;
                if step == 0 || step > spec.max {
                    return Err(err(token, format!("has a step outside 1-{}", spec.max)));
                }
                (range, Some(step))
            }
            None => (token, None),
        };
        let (start, end, full) = if range == "*" || (question_mark && range == "?") {
            (
                spec.min,
                if spec.names == WEEKDAY.names {
                    6
                } else {
                    spec.max
                },
                true,
            )
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, spec).map_err(|reason| err(token, reason))?;
            let b = parse_value(b, spec).map_err(|reason| err(token, reason))?;
            if a > b {
                return Err(err(
                    token,
                    "is a range whose start is after its end".to_owned(),
                ));
            }
            (a, b, false)
        } else {
            let v = parse_value(range, spec).map_err(|reason| err(token, reason))?;
            // `a/n` means from a to the end of the field's range, stepping by n.
            let end = if step.is_some() { spec.max } else { v };
            (v, end, false)
        };
        let item = match step {
            Some(step) => Item::Step {
                start,
                end,
                step,
                full,
            },
            None if start == end => Item::Value(start),
            None => Item::Range(start, end),
        };
        bits |= range_bits(start, end, step.unwrap_or(1));
        items.push(item);
    }
    Ok(Field {
        bits,
        items: Some(items),
        starred,
    })
}

fn parse_value(text: &str, spec: &Spec) -> Result<u32, String> {
    if text.is_empty() {
        return Err("is missing a value".to_owned());
    }
    if let Ok(v) = text.parse::<u32>() {
        return if (spec.min..=spec.max).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "has {v}, outside the allowed {}-{}",
                spec.min, spec.max
            ))
        };
    }
    if let Some(names) = spec.names
        && text.len() >= 3
        && text.is_ascii()
    {
        let lower = text.to_ascii_lowercase();
        if let Some(index) = names.iter().position(|n| {
            let n = n.to_ascii_lowercase();
            n == lower || n[..3] == lower
        }) {
            return Ok(spec.min + index as u32);
        }
    }
    let expected = match spec.names {
        Some(names) if names.len() == 12 => "a number 1-12 or a month name (JAN-DEC)",
        Some(_) => "a number 0-7 or a day name (SUN-SAT)",
        None => "a number",
    };
    Err(format!("has '{text}', which is not {expected}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn runs(expr: &str, after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        Cron::parse(expr).unwrap().next_runs(after, n)
    }

    fn field_error(expr: &str) -> (&'static str, String, String) {
        match Cron::parse(expr).unwrap_err() {
            CronError::Field {
                field,
                token,
                reason,
            } => (field, token, reason),
            other => panic!("expected a field error for {expr}, got {other:?}"),
        }
    }

    #[test]
    fn five_and_six_fields_parse_and_seven_is_rejected() {
        assert!(!Cron::parse("0 2 * * *").unwrap().has_seconds());
        assert!(Cron::parse("30 0 2 * * *").unwrap().has_seconds());
        assert_eq!(
            Cron::parse("0 0 2 * * * 2030").unwrap_err(),
            CronError::FieldCount(7)
        );
        assert_eq!(
            Cron::parse("* * * *").unwrap_err(),
            CronError::FieldCount(4)
        );
        assert_eq!(Cron::parse("   ").unwrap_err(), CronError::Empty);
        assert!(matches!(
            Cron::parse("@fortnightly").unwrap_err(),
            CronError::UnknownMacro(_)
        ));
    }

    #[test]
    fn errors_name_the_field_and_the_token() {
        let (field, token, reason) = field_error("60 * * * *");
        assert_eq!((field, token.as_str()), ("minute", "60"));
        assert!(reason.contains("0-59"), "{reason}");
        assert_eq!(field_error("* 24 * * *").0, "hour");
        assert_eq!(field_error("* * 0 * *").0, "day-of-month");
        assert_eq!(field_error("* * * 13 * ").0, "month");
        assert_eq!(field_error("* * * * 8").0, "day-of-week");
        assert_eq!(field_error("61 * * * * *").0, "second");
        let (field, token, _) = field_error("*/0 * * * *");
        assert_eq!((field, token.as_str()), ("minute", "*/0"));
        let (_, token, reason) = field_error("* * * * MON-FOO");
        assert_eq!(token, "MON-FOO");
        assert!(reason.contains("'FOO'"), "{reason}");
        let (_, _, reason) = field_error("5-1 * * * *");
        assert!(reason.contains("start is after its end"), "{reason}");
        assert_eq!(field_error("1,,2 * * * *").0, "minute");
        assert_eq!(field_error("abc * * * *").0, "minute");
        let message = Cron::parse("* * * * 9").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid day-of-week field: '9' has 9, outside the allowed 0-7"
        );
        assert!(matches!(
            Cron::parse("0 0 30 2 *").unwrap_err(),
            CronError::Impossible(_)
        ));
        assert!(Cron::parse("0 0 29 2 *").is_ok());
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let t0 = datetime!(2026-03-02 00:00:00 UTC); // a Monday
        assert_eq!(
            runs("*/20 * * * *", t0, 3),
            vec![
                datetime!(2026-03-02 00:20 UTC),
                datetime!(2026-03-02 00:40 UTC),
                datetime!(2026-03-02 01:00 UTC)
            ]
        );
        assert_eq!(
            runs("5-20/5 1 * * *", t0, 4),
            vec![
                datetime!(2026-03-02 01:05 UTC),
                datetime!(2026-03-02 01:10 UTC),
                datetime!(2026-03-02 01:15 UTC),
                datetime!(2026-03-02 01:20 UTC)
            ]
        );
        assert_eq!(
            runs("50/5 0 * * *", t0, 3),
            vec![
                datetime!(2026-03-02 00:50 UTC),
                datetime!(2026-03-02 00:55 UTC),
                datetime!(2026-03-03 00:50 UTC)
            ]
        );
        assert_eq!(
            runs("0 9 * jan,Jul sun", t0, 2),
            vec![
                datetime!(2026-07-05 09:00 UTC),
                datetime!(2026-07-12 09:00 UTC)
            ]
        );
        // 7 is Sunday too; names and numbers agree.
        assert_eq!(runs("0 0 * * 7", t0, 2), runs("0 0 * * SUN", t0, 2));
        assert_eq!(runs("0 0 * * 0", t0, 2), runs("0 0 * * sunday", t0, 2));
        assert_eq!(
            runs("0 0 * * MON-FRI", t0, 6)
                .iter()
                .map(|t| t.weekday().number_days_from_sunday())
                .collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 1, 2]
        );
        assert_eq!(
            runs("0 0 ? * 1", t0, 1),
            vec![datetime!(2026-03-09 00:00 UTC)]
        );
    }

    #[test]
    fn seconds_field_and_strictly_after() {
        let t0 = datetime!(2026-01-01 10:00:00.5 UTC);
        assert_eq!(
            runs("*/15 * * * * *", t0, 3),
            vec![
                datetime!(2026-01-01 10:00:15 UTC),
                datetime!(2026-01-01 10:00:30 UTC),
                datetime!(2026-01-01 10:00:45 UTC)
            ]
        );
        // Exactly on a slot: the next one, never the same instant again.
        assert_eq!(
            runs("0 10 * * *", datetime!(2026-01-01 10:00:00 UTC), 1),
            vec![datetime!(2026-01-02 10:00 UTC)]
        );
        // Other offsets are converted to UTC first.
        assert_eq!(
            runs("0 10 * * *", datetime!(2026-01-01 11:30:00 +02:00), 1),
            vec![datetime!(2026-01-01 10:00 UTC)]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_like_vixie_cron() {
        let t0 = datetime!(2026-03-01 00:00:00 UTC); // a Sunday
        // Both restricted: either matches (the 13th, or any Friday).
        assert_eq!(
            runs("0 0 13 * FRI", t0, 3),
            vec![
                datetime!(2026-03-06 00:00 UTC),
                datetime!(2026-03-13 00:00 UTC),
                datetime!(2026-03-20 00:00 UTC)
            ]
        );
        // Day-of-month starred (`*/2`): both must match.
        assert_eq!(
            runs("0 0 */2 * MON", t0, 2),
            vec![
                datetime!(2026-03-09 00:00 UTC),
                datetime!(2026-03-23 00:00 UTC)
            ]
        );
    }

    #[test]
    fn month_year_and_leap_year_boundaries() {
        assert_eq!(
            runs("0 0 31 * *", datetime!(2026-01-31 12:00 UTC), 3),
            vec![
                datetime!(2026-03-31 00:00 UTC),
                datetime!(2026-05-31 00:00 UTC),
                datetime!(2026-07-31 00:00 UTC)
            ]
        );
        assert_eq!(
            runs("30 23 31 12 *", datetime!(2026-12-31 23:30 UTC), 1),
            vec![datetime!(2027-12-31 23:30 UTC)]
        );
        assert_eq!(
            runs("59 23 * * *", datetime!(2026-12-31 23:59:30 UTC), 1),
            vec![datetime!(2027-01-01 23:59 UTC)]
        );
        assert_eq!(
            runs("0 12 29 2 *", datetime!(2026-01-01 00:00 UTC), 3),
            vec![
                datetime!(2028-02-29 12:00 UTC),
                datetime!(2032-02-29 12:00 UTC),
                datetime!(2036-02-29 12:00 UTC)
            ]
        );
        // 2100 is not a leap year.
        assert_eq!(
            runs("0 0 29 2 *", datetime!(2097-01-01 00:00 UTC), 1),
            vec![datetime!(2104-02-29 00:00 UTC)]
        );
        // Quartz extensions are not cron: refused with the field named.
        assert_eq!(field_error("0 0 L * *").0, "day-of-month");
        assert_eq!(field_error("0 0 * * 5#3").0, "day-of-week");
    }

    #[test]
    fn intervals_and_warnings() {
        let t0 = datetime!(2026-03-02 00:00:00 UTC);
        let cron = |e: &str| Cron::parse(e).unwrap();
        assert_eq!(cron("*/5 * * * *").min_interval(t0, 10), Some(300));
        assert_eq!(cron("0 9 * * 1-5").min_interval(t0, 10), Some(86_400));
        assert_eq!(cron("0,10 * * * *").min_interval(t0, 10), Some(600));
        assert_eq!(cron("* * * * * *").min_interval(t0, 10), Some(1));
        assert!(cron("*/5 * * * *").warning(t0).is_none());
        assert!(cron("0 2 * * *").warning(t0).is_none());
        let every_second = cron("* * * * * *").warning(t0).unwrap();
        assert!(every_second.contains("every second"), "{every_second}");
        let every_minute = cron("* * * * *").warning(t0).unwrap();
        assert!(every_minute.contains("every minute"), "{every_minute}");
        let short = cron("*/2 * * * *").warning(t0).unwrap();
        assert!(short.contains("every 2 minutes"), "{short}");
        let bursty = cron("0,1 3 * * *").warning(t0).unwrap();
        assert!(bursty.contains("every minute"), "{bursty}");
    }

    #[test]
    fn odd_input_is_an_error_never_a_panic() {
        let tokens = [
            "*",
            "?",
            "-",
            "/",
            ",",
            "*/",
            "/5",
            "5-",
            "-5",
            "1-2-3",
            "1/2/3",
            "99999999999",
            "é",
            "monday",
            "MO",
            "janx",
            "L",
            "5#2",
            "*/1",
            "0-59/59",
            "7",
            "SUN-SAT",
            "",
        ];
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for a in tokens {
            for b in tokens {
                for expr in [
                    format!("{a} {b} * * *"),
                    format!("0 0 {a} {b} *"),
                    format!("0 0 * {a} {b}"),
                    format!("{a} 0 0 * * {b}"),
                ] {
                    if let Ok(cron) = Cron::parse(&expr) {
                        assert!(!cron.next_runs(t0, 2).is_empty(), "{expr}");
                        assert!(!cron.describe().is_empty(), "{expr}");
                    }
                }
            }
        }
        let late = datetime!(9999-12-31 23:59:59 UTC);
        assert_eq!(Cron::parse("0 0 1 1 *").unwrap().next_after(late), None);
    }

    #[test]
    fn descriptions() {
        let d = |e: &str| Cron::parse(e).unwrap().describe();
        assert_eq!(d("*/5 * * * *"), "Every 5 minutes");
        assert_eq!(d("* * * * *"), "Every minute");
        assert_eq!(d("* * * * * *"), "Every second");
        assert_eq!(d("*/10 * * * * *"), "Every 10 seconds");
        assert_eq!(d("0 * * * *"), "Every hour");
        assert_eq!(d("@hourly"), "Every hour");
        assert_eq!(d("30 9 * * 1-5"), "At 09:30 on Monday through Friday");
        assert_eq!(d("0 2 * * *"), "At 02:00");
        assert_eq!(d("15 30 14 * * *"), "At 14:30:15");
        assert_eq!(d("0 */2 * * *"), "At minute 0 past every 2nd hour");
        assert_eq!(
            d("*/15 9-17 * * *"),
            "At every 15th minute past every hour from 9 through 17"
        );
        assert_eq!(d("0 9,17 * * *"), "At 09:00 and 17:00");
        assert_eq!(d("0 0 1 * *"), "At 00:00 on day 1 of the month");
        assert_eq!(d("0 0 1,15 * *"), "At 00:00 on days 1 and 15 of the month");
        assert_eq!(
            d("0 8 * * MON,WED,FRI"),
            "At 08:00 on Monday, Wednesday and Friday"
        );
        assert_eq!(d("0 0 1 1 *"), "At 00:00 on day 1 of the month in January");
        assert_eq!(d("0 6 * 1-3 *"), "At 06:00 in January through March");
        assert_eq!(
            d("0 0 13 * 5"),
            "At 00:00 on day 13 of the month or on Friday"
        );
        assert_eq!(d("0 12 */2 * *"), "At 12:00 on every 2nd day of the month");
        assert_eq!(d("5,35 1 * * *"), "At minute 5 and 35 past hour 1");
        assert_eq!(d("0 0 * */3 *"), "At 00:00 in every 3rd month");
    }
}
