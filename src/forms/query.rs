//! A form's URL query parameters: the page passes along the ones it was opened with, and only
//! the form's `allowedQueryParams` count — never `code`, which carries a function key.
//!
//! Depends on the form model only.

use serde_json::{Map, Value};

use super::model::Form;

/// The form's `allowedQueryParams` found in the request's query string and in `sent` (the
/// parameters the page was opened with). `code` (a function key) never counts.
pub fn allowed_query(form: &Form, raw: &str, sent: &Map<String, Value>) -> Map<String, Value> {
    let allowed = form.allowed_query_params.as_deref().unwrap_or_default();
    let ok = |k: &str| k != "code" && allowed.iter().any(|a| a == k);
    let mut query = Map::new();
    for (k, v) in sent {
        if ok(k) {
            query.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if ok(&k) {
            query.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    query
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(allowed: Option<Vec<&str>>) -> Form {
        let mut f: Form = serde_json::from_value(json!({
            "id": "f", "orgId": "GLOBAL", "name": "F", "linkedWorkflow": "w",
            "formSchema": {"fields": []}, "createdBy": "me",
            "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"
        }))
        .unwrap();
        f.allowed_query_params = allowed.map(|a| a.into_iter().map(str::to_owned).collect());
        f
    }

    #[test]
    fn only_allowed_query_parameters_count_and_never_the_key() {
        let f = form(Some(vec!["ticket", "code"]));
        let sent = json!({"ticket": "1", "other": "x"});
        let q = allowed_query(&f, "ticket=2&code=secret&step=1", sent.as_object().unwrap());
        assert_eq!(Value::Object(q), json!({"ticket": "2"}));
        assert!(allowed_query(&form(None), "ticket=2", &Map::new()).is_empty());
    }
}
