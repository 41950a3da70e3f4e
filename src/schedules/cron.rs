//! Cron expressions: v1's rules and our errors in front of `croner`, which evaluates them (next
//! runs) and describes them in English; plus the short-interval warning.
//!
//! Accepts five fields (`minute hour day-of-month month day-of-week`, what
//! `@workflow(schedule=...)` uses, as in v1) and six fields with a leading seconds field
//! (NCRONTAB, the Azure Functions timer format), plus the `@hourly`/`@daily`/`@midnight`/
//! `@weekly`/`@monthly`/`@yearly`/`@annually` macros. Each field takes `*`, `?` (day fields),
//! values, `a-b` ranges, `/n` steps (`a/n` runs from `a` to the end of the field) and comma
//! lists; months and weekdays also take English names (`JAN`, `mon`, `Sunday`). Seven-field
//! expressions (with a year) and Quartz's `L`, `W` and `#` are rejected, as v1 did.
//!
//! Why a check in front of croner: croner accepts more than v1 did (years, `L`/`W`/`#`, empty
//! list items, names in any field) and its errors do not say which field is wrong. Every field
//! is therefore checked and rewritten here into plain numbers, so croner only sees what v1
//! accepted, and the API's error names the field and the token.
//!
//! Pure computation: depends on `croner` and `time` only, no storage, no HTTP. Invariants: every
//! field error names the field and the offending token; a parsed [`Cron`] always matches some
//! instant (an impossible date such as `0 0 30 2 *` is a parse error), so [`Cron::next_after`]
//! only fails past croner's last year (5000); all instants are UTC. Day matching follows Vixie
//! cron: when both day-of-month and day-of-week are restricted (neither starts with `*`), a day
//! matching either one fires; when one starts with `*` (`*/2`), a day must match both.

use std::cmp::Ordering;

use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
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
    /// croner refused what passed our checks (a gap between the two rule sets).
    #[error("the cron expression is not supported: {0}")]
    Unsupported(String),
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

/// What one field accepts.
#[derive(Clone, Copy, Debug)]
struct Spec {
    name: &'static str,
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
    /// Takes `?` for "any" (the two day fields).
    question_mark: bool,
}

const SECOND: Spec = Spec {
    name: "second",
    min: 0,
    max: 59,
    names: None,
    question_mark: false,
};
const MINUTE: Spec = Spec {
    name: "minute",
    ..SECOND
};
const HOUR: Spec = Spec {
    name: "hour",
    max: 23,
    ..SECOND
};
const DAY: Spec = Spec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: None,
    question_mark: true,
};
const MONTH: Spec = Spec {
    name: "month",
    min: 1,
    max: 12,
    names: Some(&MONTH_NAMES),
    question_mark: false,
};
// 7 is Sunday too (croner folds it onto 0).
const WEEKDAY: Spec = Spec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: Some(&DAY_NAMES),
    question_mark: true,
};

/// A parsed cron expression.
#[derive(Clone, Debug)]
pub struct Cron {
    source: String,
    has_seconds: bool,
    /// The minute field is `*` (the warning says "every minute").
    every_minute: bool,
    inner: croner::Cron,
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
        let expanded = match trimmed.strip_prefix('@') {
            Some(name) => {
                expand_macro(name).ok_or_else(|| CronError::UnknownMacro(trimmed.into()))?
            }
            None => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let specs: &[Spec] = match parts.len() {
            5 => &[MINUTE, HOUR, DAY, MONTH, WEEKDAY],
            6 => &[SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY],
            n => return Err(CronError::FieldCount(n)),
        };
        let fields = parts
            .iter()
            .zip(specs)
            .map(|(text, spec)| normalize_field(text, spec))
            .collect::<Result<Vec<String>, CronError>>()?;
        let has_seconds = parts.len() == 6;
        let [.., minute, _, day, _, weekday] = fields.as_slice() else {
            return Err(CronError::FieldCount(parts.len()));
        };
        // Vixie's rule: a day field starting with `*` (`*/2`) is "starred", and a starred day
        // field combines with the other by AND. croner only treats a bare `*` as starred.
        let starred = |f: &str| f.starts_with('*');
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(starred(day) || starred(weekday))
            .build();
        let inner = parser
            .parse(&fields.join(" "))
            .map_err(|e| CronError::Unsupported(e.to_string()))?;
        let cron = Cron {
            source: trimmed.to_owned(),
            has_seconds,
            every_minute: minute == "*",
            inner,
        };
        // Some run within croner's years, or never: `0 0 30 2 *` is refused here.
        if cron.next_after(OffsetDateTime::UNIX_EPOCH).is_none() {
            return Err(CronError::Impossible(format!(
                "no selected month has the selected day-of-month in '{}'",
                cron.source
            )));
        }
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

    /// The first run strictly after `after` (UTC), or `None` when there is none before
    /// croner's last year.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after
            .checked_to_offset(UtcOffset::UTC)?
            .replace_nanosecond(0)
            .ok()?;
        let start = Utc(PrimitiveDateTime::new(after.date(), after.time()));
        self.inner
            .find_next_occurrence(&start, false)
            .ok()
            .map(|next| next.0.assume_utc())
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
        } else if interval < SHORT_INTERVAL_SECONDS && self.every_minute {
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

    /// croner's English description, such as "At 02:00." or "At every 5 minutes.".
    pub fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn expand_macro(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => return None,
    })
}

fn seconds_text(seconds: i64) -> String {
    match seconds {
        1 => "second".to_owned(),
        60 => "minute".to_owned(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Checks one field against v1's rules and writes it the way croner reads it: names become
/// numbers, `?` becomes `*`, `a/n` becomes `a-max/n`.
fn normalize_field(text: &str, spec: &Spec) -> Result<String, CronError> {
    let err = |token: &str, reason: String| CronError::Field {
        field: spec.name,
        token: token.to_owned(),
        reason,
    };
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
        let range = if range == "*" || (spec.question_mark && range == "?") {
            "*".to_owned()
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, spec).map_err(|reason| err(token, reason))?;
            let b = parse_value(b, spec).map_err(|reason| err(token, reason))?;
            if a > b {
                return Err(err(
                    token,
                    "is a range whose start is after its end".to_owned(),
                ));
            }
            format!("{a}-{b}")
        } else {
            let v = parse_value(range, spec).map_err(|reason| err(token, reason))?;
            match step {
                Some(_) => format!("{v}-{}", spec.max),
                None => v.to_string(),
            }
        };
        items.push(match step {
            Some(step) => format!("{range}/{step}"),
            None => range,
        });
    }
    Ok(items.join(","))
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

/// A UTC wall clock for croner, which searches over civil time ([`CronDateTime`]); UTC has no
/// gaps or repeats, so every civil time resolves to exactly one instant.
#[derive(Clone, Copy, Debug)]
struct Utc(PrimitiveDateTime);

impl CronDateTime for Utc {
    fn to_civil(&self) -> CivilDateTime {
        let t = self.0;
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                t.year(),
                u32::from(u8::from(t.month())),
                u32::from(t.day()),
            ),
            CivilTime::from_parts_unchecked(
                u32::from(t.hour()),
                u32::from(t.minute()),
                u32::from(t.second()),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(self.0.weekday().number_days_from_sunday()))
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        use croner::errors::CronError as E;
        let narrow = |v: u32| u8::try_from(v).map_err(|_| E::InvalidDate);
        let month = Month::try_from(narrow(civil.month())?).map_err(|_| E::InvalidDate)?;
        let date = Date::from_calendar_date(civil.year(), month, narrow(civil.day())?)
            .map_err(|_| E::InvalidDate)?;
        let time = Time::from_hms(
            narrow(civil.hour())?,
            narrow(civil.minute())?,
            narrow(civil.second())?,
        )
        .map_err(|_| E::InvalidTime)?;
        Ok(Resolution::Single(Utc(PrimitiveDateTime::new(date, time))))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(time::Duration::seconds(seconds))
            .map(Utc)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
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
    fn what_croner_accepts_beyond_v1_is_refused() {
        // Quartz day modifiers, names outside month and weekday, a year field, `?` outside the
        // day fields and croner's lenient `/n` without a start.
        assert_eq!(field_error("0 0 15W * *").0, "day-of-month");
        assert_eq!(field_error("0 0 LW * *").0, "day-of-month");
        assert_eq!(field_error("0 0 * * 5L").0, "day-of-week");
        assert_eq!(field_error("JAN 0 * * *").0, "minute");
        assert_eq!(field_error("/5 * * * *").0, "minute");
        assert_eq!(field_error("0 ? * * *").0, "hour");
        assert_eq!(
            Cron::parse("0 0 0 1 1 * 2030").unwrap_err(),
            CronError::FieldCount(7)
        );
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
        // croner's English, on the expression as rewritten for it (names are numbers by then).
        let d = |e: &str| Cron::parse(e).unwrap().describe();
        assert_eq!(d("*/5 * * * *"), "At every 5 minutes.");
        assert_eq!(d("* * * * *"), "Every minute.");
        assert_eq!(d("* * * * * *"), "Every second.");
        assert_eq!(d("*/10 * * * * *"), "At every 10 seconds.");
        assert_eq!(d("0 * * * *"), "At minute 0 past every hour.");
        assert_eq!(d("@hourly"), "At minute 0 past every hour.");
        assert_eq!(
            d("30 9 * * 1-5"),
            "At 09:30, on Monday, Tuesday, Wednesday, Thursday, and Friday."
        );
        assert_eq!(d("0 2 * * *"), "At 02:00.");
        assert_eq!(d("15 30 14 * * *"), "At 14:30:15.");
        assert_eq!(d("0 */2 * * *"), "At minute 0, of every 2 hours.");
        assert_eq!(d("*/15 9-17 * * *"), "At every 15 minutes, of hour 9-17.");
        assert_eq!(d("0 9,17 * * *"), "At minute 0, of hour 9 and 17.");
        assert_eq!(d("0 0 1 * *"), "At 00:00, on day 1.");
        assert_eq!(d("0 0 1,15 * *"), "At 00:00, on day 1 and 15.");
        assert_eq!(
            d("0 8 * * MON,WED,FRI"),
            "At 08:00, on Monday, Wednesday, and Friday."
        );
        assert_eq!(d("0 0 1 1 *"), "At 00:00, on day 1, in January.");
        assert_eq!(
            d("0 6 * 1-3 *"),
            "At 06:00, in January, February, and March."
        );
        assert_eq!(d("0 0 13 * 5"), "At 00:00, on day 13 or Friday.");
        assert_eq!(
            d("0 12 */2 * *"),
            "At 12:00, on day 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, and 31."
        );
        assert_eq!(d("5,35 1 * * *"), "At minute 5 and 35, of hour 1.");
        assert_eq!(d("0 0 * */3 *"), "At 00:00, in every 3 months.");
        // Vixie's AND for a starred day field is said, not just done.
        assert!(d("0 0 */2 * MON").ends_with("(if it is also Monday)."));
    }
}
