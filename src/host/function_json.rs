//! `function.json` files and the host's rules for them.
//!
//! The host refuses to start (or silently drops a function) when these rules are broken, and we
//! cannot run the host here, so [`validate_app`] checks them before a package is built: the
//! function-name regex, reserved route prefixes, one trigger per function, well-formed bindings,
//! six-field NCRONTAB schedules, and no two HTTP functions with the same route.
//! See `azure-and-integrations.md` §1.1 and §1.4.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::invoke::HTTP_OUTPUT_BINDING;

/// The parts of a binding we check; unknown properties are kept for other binding types.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    #[serde(rename = "type")]
    pub kind: String,
    pub direction: String,
    pub name: String,
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FunctionJson {
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub disabled: Option<Value>,
}

impl FunctionJson {
    pub fn trigger(&self) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.kind.ends_with("Trigger"))
    }

    /// The route an HTTP trigger answers on, below the route prefix (default: the function name).
    pub fn http_route(&self, function_name: &str) -> Option<String> {
        let trigger = self.trigger().filter(|t| t.kind == "httpTrigger")?;
        Some(prop(trigger, "route").unwrap_or_else(|| function_name.to_owned()))
    }
}

/// One broken rule, naming the function and the field.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub function: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.function, self.problem)
    }
}

/// The host's function-name rule: `^[a-z][a-z0-9_\-]{0,127}$`, case-insensitive, not `host`.
pub fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_ok
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.eq_ignore_ascii_case("host")
}

/// Validates one function's definition.
pub fn validate_function(name: &str, function: &FunctionJson) -> Vec<Violation> {
    let mut problems = Vec::new();
    let mut bad = |problem: String| {
        problems.push(Violation {
            function: name.to_owned(),
            problem,
        })
    };
    if !valid_function_name(name) {
        bad("function name must match ^[a-z][a-z0-9_-]{0,127}$ and not be `host`".into());
    }
    let triggers: Vec<_> = function
        .bindings
        .iter()
        .filter(|b| b.kind.ends_with("Trigger"))
        .collect();
    if triggers.len() != 1 {
        bad(format!(
            "bindings must contain exactly one trigger, found {}",
            triggers.len()
        ));
    }
    let mut names = std::collections::HashSet::new();
    for b in &function.bindings {
        if !matches!(b.direction.as_str(), "in" | "out" | "inout") {
            bad(format!(
                "binding {:?}: direction must be in, out or inout",
                b.name
            ));
        }
        if !(b.name == "$return" || is_identifier(&b.name)) {
            bad(format!(
                "binding {:?}: name must be an identifier or $return",
                b.name
            ));
        }
        if !names.insert(b.name.to_ascii_lowercase()) {
            bad(format!("binding name {:?} is used twice", b.name));
        }
        if b.kind.ends_with("Trigger") && b.direction != "in" {
            bad(format!("trigger {:?} must have direction in", b.name));
        }
        match b.kind.as_str() {
            "httpTrigger" => {
                let level = prop(b, "authLevel").unwrap_or_else(|| "function".into());
                if !matches!(level.as_str(), "anonymous" | "function" | "admin") {
                    bad(format!(
                        "authLevel {level:?} is not anonymous, function or admin"
                    ));
                }
                if let Some(methods) = b.properties.get("methods") {
                    let ok = methods.as_array().is_some_and(|m| {
                        m.iter().all(|v| {
                            v.as_str().is_some_and(|s| {
                                matches!(
                                    s,
                                    "get"
                                        | "post"
                                        | "put"
                                        | "patch"
                                        | "delete"
                                        | "head"
                                        | "options"
                                )
                            })
                        })
                    });
                    if !ok {
                        bad("methods must be a list of lower-case HTTP verbs".into());
                    }
                }
                let has_res = function.bindings.iter().any(|o| {
                    o.kind == "http" && o.direction == "out" && o.name == HTTP_OUTPUT_BINDING
                });
                if !has_res {
                    bad(format!(
                        "an httpTrigger function needs an http output binding named {HTTP_OUTPUT_BINDING:?}"
                    ));
                }
                if let Some(route) = prop(b, "route") {
                    let trimmed = route.trim_matches('/').to_ascii_lowercase();
                    if trimmed.starts_with("admin") || trimmed.starts_with("runtime") {
                        bad(format!(
                            "route {route:?} conflicts with the host's built-in admin/runtime routes"
                        ));
                    }
                }
            }
            "timerTrigger" => match prop(b, "schedule") {
                Some(s) if s.starts_with('%') && s.ends_with('%') && s.len() > 2 => {}
                Some(s) => {
                    if let Err(e) = validate_ncrontab(&s) {
                        bad(format!("schedule {s:?}: {e}"));
                    }
                }
                None => bad("timerTrigger needs a schedule".into()),
            },
            "queueTrigger" | "queue" => match prop(b, "queueName") {
                Some(q) if valid_queue_name(&q) || (q.starts_with('%') && q.ends_with('%')) => {}
                Some(q) => bad(format!("queueName {q:?} is not a valid queue name")),
                None => bad(format!("{} binding {:?} needs queueName", b.kind, b.name)),
            },
            _ => {}
        }
    }
    problems
}

/// Validates every function of an app and the rules that span functions (route conflicts).
pub fn validate_app(functions: &BTreeMap<String, FunctionJson>) -> Vec<Violation> {
    let mut problems: Vec<Violation> = functions
        .iter()
        .flat_map(|(name, f)| validate_function(name, f))
        .collect();
    let mut routes: BTreeMap<String, &str> = BTreeMap::new();
    for (name, f) in functions {
        if let Some(route) = f.http_route(name) {
            let key = route.trim_matches('/').to_ascii_lowercase();
            if let Some(other) = routes.insert(key, name) {
                problems.push(Violation {
                    function: name.clone(),
                    problem: format!("route {route:?} is also used by {other}"),
                });
            }
        }
    }
    problems
}

/// Reads `dir/<name>/function.json` for every sub-folder of `dir`.
pub fn load_functions(dir: &Path) -> Result<BTreeMap<String, FunctionJson>, String> {
    let mut functions = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path().join("function.json");
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed: FunctionJson =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        functions.insert(name, parsed);
    }
    Ok(functions)
}

/// A string-valued binding property such as `route`, `schedule` or `queueName`.
fn prop(binding: &Binding, key: &str) -> Option<String> {
    binding
        .properties
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Azure queue names: 3–63 chars, lower-case letters, digits and single inner hyphens.
fn valid_queue_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Checks a six-field NCRONTAB expression `{second} {minute} {hour} {day} {month} {day-of-week}`.
/// A five-field cron copied from elsewhere is rejected with a hint, as the host would misread it.
pub fn validate_ncrontab(expr: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 6] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 6),
    ];
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() == 5 {
        return Err("NCRONTAB needs six fields (seconds first); add a leading `0`".into());
    }
    if parts.len() != 6 {
        return Err(format!("NCRONTAB needs six fields, found {}", parts.len()));
    }
    for (part, (field, min, max)) in parts.iter().zip(FIELDS) {
        for item in part.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(n) if n >= 1 && n <= max.max(1) => {}
                    _ => return Err(format!("{field}: step {step:?} is invalid")),
                }
            }
            if range == "*" {
                continue;
            }
            let bounds: Vec<&str> = range.split('-').collect();
            if bounds.len() > 2 || bounds.iter().any(|b| b.is_empty()) {
                return Err(format!("{field}: {item:?} is not a value, range or step"));
            }
            for b in bounds {
                let value =
                    cron_value(field, b).ok_or_else(|| format!("{field}: {b:?} is not a value"))?;
                if value < min || value > max {
                    return Err(format!("{field}: {value} is outside {min}-{max}"));
                }
            }
        }
    }
    Ok(())
}

fn cron_value(field: &str, text: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let lower = text.to_ascii_lowercase();
    let lower = lower.get(..3)?;
    match field {
        "month" => MONTHS
            .iter()
            .position(|m| *m == lower)
            .map(|i| i as u32 + 1),
        "day-of-week" => DAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> FunctionJson {
        serde_json::from_str(json).unwrap()
    }

    const HTTP: &str = r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"{*path}"},{"type":"http","direction":"out","name":"res"}]}"#;

    #[test]
    fn function_names() {
        assert!(valid_function_name("http_api"));
        assert!(valid_function_name("Timer-1"));
        for bad in ["", "1abc", "host", "HOST", "a.b", &"a".repeat(129)] {
            assert!(!valid_function_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn reserved_routes_are_rejected_by_prefix() {
        for route in ["admin/x", "/Runtime", "administrator/users"] {
            let f = parse(&HTTP.replace("{*path}", route));
            assert_eq!(validate_function("f", &f).len(), 1, "{route}");
        }
        assert!(validate_function("f", &parse(HTTP)).is_empty());
    }

    #[test]
    fn one_trigger_and_an_http_output() {
        let f = parse(r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}"#);
        assert!(
            validate_function("f", &f)[0]
                .problem
                .contains("output binding")
        );
        let f = parse(
            r#"{"bindings":[{"type":"queue","direction":"out","name":"q","queueName":"abc"}]}"#,
        );
        assert!(
            validate_function("f", &f)[0]
                .problem
                .contains("exactly one trigger")
        );
    }

    #[test]
    fn timer_schedules_need_six_fields() {
        assert!(validate_ncrontab("0 */5 * * * *").is_ok());
        assert!(validate_ncrontab("0 30 9 * Jan-Mar Mon-Fri").is_ok());
        assert!(
            validate_ncrontab("*/5 * * * *")
                .unwrap_err()
                .contains("leading `0`")
        );
        assert!(validate_ncrontab("0 61 * * * *").is_err());
        assert!(validate_ncrontab("0 */0 * * * *").is_err());
    }

    #[test]
    fn conflicting_routes_across_functions() {
        let mut app = BTreeMap::new();
        app.insert("a".to_owned(), parse(HTTP));
        app.insert("b".to_owned(), parse(HTTP));
        let problems = validate_app(&app);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].problem.contains("also used by a"));
    }
}
