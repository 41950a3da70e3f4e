//! Logging set-up and the redaction rules every log line follows.
//!
//! Human-readable text locally; JSON lines under the Functions host (the host forwards the
//! handler's stdout/stderr to its log pipeline). Invariant: request logging records method, path,
//! a redacted query string, status and latency — never headers (so never `x-functions-key` or
//! `Authorization`) and never the values of credential-like query parameters such as `code`.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber; logs go to stderr.
pub fn init(settings: &Settings) {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    // A second init (tests, `bifrost run` after `serve` in one process) keeps the first one.
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Query parameters whose values are credentials and are never logged.
const SECRET_QUERY_KEYS: &[&str] = &[
    "code",
    "key",
    "sig",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "secret",
    "state",
    // Never expected in a query, but a client that puts a bearer token or API key there
    // (workflow keys belong in the `Authorization` header) must not get it logged.
    "authorization",
    "api_key",
    "apikey",
];

/// The query string with credential values replaced by `***` (parameter names are kept).
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                .map(|(k, _)| k.into_owned())
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if SECRET_QUERY_KEYS.contains(&decoded.as_str()) && !value.is_empty() {
                format!("{name}=***")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_query_values_are_masked() {
        assert_eq!(redact_query("code=abc&x=1"), "code=***&x=1");
        assert_eq!(redact_query("CODE=abc"), "CODE=***");
        assert_eq!(redact_query("%63ode=abc"), "%63ode=***");
        assert_eq!(
            redact_query("x=1&client_secret=s&empty="),
            "x=1&client_secret=***&empty="
        );
        assert_eq!(
            redact_query("Authorization=Bearer%20wk_x&api_key=wk_y"),
            "Authorization=***&api_key=***"
        );
    }
}
