//! The payload-mode wire format of the Azure Functions custom-handler protocol.
//!
//! The host sends `POST /{FunctionName}` with `{"Data": {...}, "Metadata": {...}}` and expects
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}` back with a 2xx status. The shapes are
//! parsed exactly as the host sends them: PascalCase keys, header values as arrays, `Query` as an
//! object (or, in older hosts, a string), `ScheduleStatus` possibly `null`, timestamps in several
//! formats. See `azure-and-integrations.md` §1.5.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// One invocation as the host sends it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    /// One entry per input binding name (trigger and inputs).
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Trigger metadata plus `sys`.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// `Metadata.sys`: method name, the host's clock and a random guid.
    pub fn sys(&self) -> Option<SysMetadata> {
        self.metadata
            .get("sys")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// The first input that has the shape of an HTTP trigger request, with its binding name.
    pub fn http_request(&self) -> Option<(&str, HttpRequestData)> {
        self.data.iter().find_map(|(name, value)| {
            let obj = value.as_object()?;
            if !(obj.contains_key("Method") && obj.contains_key("Url")) {
                return None;
            }
            serde_json::from_value(value.clone())
                .ok()
                .map(|req| (name.as_str(), req))
        })
    }

    /// The named input parsed as a timer trigger's `TimerInfo`.
    pub fn timer(&self, binding: &str) -> Option<TimerInfo> {
        self.data
            .get(binding)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SysMetadata {
    #[serde(default)]
    pub method_name: String,
    #[serde(default)]
    pub utc_now: Option<String>,
    #[serde(default)]
    pub rand_guid: Option<String>,
}

/// `Data.<binding>` of an HTTP trigger.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpRequestData {
    pub url: String,
    pub method: String,
    #[serde(default, deserialize_with = "query_map")]
    pub query: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "header_map")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub identities: Value,
    #[serde(default)]
    pub body: Option<Value>,
}

impl HttpRequestData {
    /// Header lookup, case-insensitive as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    /// The raw body bytes. The host sends text bodies as strings, binary and multipart bodies as
    /// base64, and (some versions) JSON bodies as JSON values.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        let binary = self.header("content-type").is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/octet-stream") || ct.starts_with("multipart/")
        });
        match &self.body {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) if binary => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("Body is not valid base64 for a binary content type: {e}")),
            Some(Value::String(s)) => Ok(s.clone().into_bytes()),
            Some(other) => serde_json::to_vec(other).map_err(|e| e.to_string()),
        }
    }

    /// Path and query of `Url` (the host sends an absolute URL).
    pub fn path_and_query(&self) -> Result<String, String> {
        let url = url::Url::parse(&self.url)
            .or_else(|_| url::Url::parse("http://localhost").and_then(|base| base.join(&self.url)))
            .map_err(|e| format!("Url is not a URL: {e}"))?;
        Ok(match url.query() {
            Some(q) => format!("{}?{}", url.path(), q),
            None => url.path().to_owned(),
        })
    }
}

/// `Data.<binding>` of a timer trigger.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInfo {
    #[serde(default)]
    pub schedule: Option<Value>,
    /// `null` when schedule monitoring is off.
    #[serde(default)]
    pub schedule_status: Option<ScheduleStatus>,
    #[serde(default)]
    pub is_past_due: bool,
}

/// Kept as the host's strings: formats vary (offset or `Z`, 0–7 fractional digits, and at least
/// one host version sent unparsable values), so parsing is lenient and never fails a run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleStatus {
    #[serde(default)]
    pub last: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

impl ScheduleStatus {
    pub fn last(&self) -> Option<OffsetDateTime> {
        self.last.as_deref().and_then(parse_host_time)
    }

    pub fn next(&self) -> Option<OffsetDateTime> {
        self.next.as_deref().and_then(parse_host_time)
    }
}

/// Parses the host's .NET timestamps (`2026-01-10T10:15:00+00:00`, `...00.0123Z`,
/// `...00.1234567+02:00`, or without an offset meaning UTC). `None` when unparsable.
pub fn parse_host_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // No offset: .NET's DateTime serialization of a UTC value.
    OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok()
}

/// What the handler answers for one invocation.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// The HTTP output binding value (`Outputs.res`). Header values must be strings: the host
/// stringifies arrays verbatim, which would corrupt them.
#[derive(Clone, Debug, Serialize)]
pub struct HttpOutput {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

fn query_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(obj)) => obj
            .into_iter()
            .map(|(k, v)| (k, scalar_to_string(v)))
            .collect(),
        // Stale docs show `"Query": "{}"`: a JSON object inside a string; accept a raw query too.
        Some(Value::String(s)) => match serde_json::from_str::<Map<String, Value>>(&s) {
            Ok(obj) => obj
                .into_iter()
                .map(|(k, v)| (k, scalar_to_string(v)))
                .collect(),
            Err(_) => url::form_urlencoded::parse(s.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect(),
        },
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "Query must be an object or a string, found {other}"
            )));
        }
    })
}

fn header_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    let value = Option::<Map<String, Value>>::deserialize(d)?;
    let mut headers = BTreeMap::new();
    for (name, v) in value.unwrap_or_default() {
        let values = match v {
            Value::Array(items) => items.into_iter().map(scalar_to_string).collect(),
            Value::Null => Vec::new(),
            other => vec![scalar_to_string(other)],
        };
        headers.insert(name, values);
    }
    Ok(headers)
}

fn scalar_to_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body the host sends for an HTTP trigger, as captured from host source (§1.5).
    const HTTP_ENVELOPE: &str = r#"{
      "Data": {
        "req": {
          "Url": "https://app.azurewebsites.net/api/tenants/t1/users?code=SECRET&x=1",
          "Method": "POST",
          "Query": { "code": "SECRET", "x": "1" },
          "Headers": { "Content-Type": ["application/json"], "X-MS-CLIENT-PRINCIPAL": ["eyJ..."] },
          "Params": { "tenantId": "t1" },
          "Identities": [ { "AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": [] } ],
          "Body": "{\"name\":\"x\"}"
        }
      },
      "Metadata": { "tenantId": "t1", "x": "1", "sys": { "MethodName": "users", "UtcNow": "2026-01-10T10:15:00Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e" } }
    }"#;

    #[test]
    fn parses_the_http_trigger_envelope() {
        let inv: InvocationRequest = serde_json::from_str(HTTP_ENVELOPE).unwrap();
        let (binding, req) = inv.http_request().unwrap();
        assert_eq!(binding, "req");
        assert_eq!(req.method, "POST");
        assert_eq!(req.query["x"], "1");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.params["tenantId"], "t1");
        assert_eq!(req.body_bytes().unwrap(), br#"{"name":"x"}"#);
        assert_eq!(
            req.path_and_query().unwrap(),
            "/api/tenants/t1/users?code=SECRET&x=1"
        );
        assert_eq!(inv.sys().unwrap().method_name, "users");
    }

    #[test]
    fn query_may_be_a_string() {
        for query in [r#""{\"a\":\"1\"}""#, r#""a=1""#, r#""{}""#] {
            let json = format!(r#"{{"Url":"/api/x","Method":"GET","Query":{query}}}"#);
            let req: HttpRequestData = serde_json::from_str(&json).unwrap();
            assert!(req.query.is_empty() || req.query["a"] == "1", "{query}");
        }
    }

    #[test]
    fn binary_bodies_arrive_base64_encoded() {
        let req: HttpRequestData = serde_json::from_str(
            r#"{"Url":"/api/x","Method":"POST","Headers":{"Content-Type":["application/octet-stream"]},"Body":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(req.body_bytes().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn timer_info_with_null_status_and_odd_timestamps() {
        let inv: InvocationRequest = serde_json::from_str(
            r#"{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}},"Metadata":{}}"#,
        )
        .unwrap();
        let timer = inv.timer("myTimer").unwrap();
        assert!(timer.is_past_due);
        assert!(timer.schedule_status.is_none());

        let status: ScheduleStatus = serde_json::from_str(
            r#"{"Last":"2026-01-10T10:15:00+00:00","Next":"2026-01-10T10:30:00.1234567Z","LastUpdated":"garbage"}"#,
        )
        .unwrap();
        assert!(status.last().is_some());
        assert!(status.next().is_some());
        assert!(parse_host_time("garbage").is_none());
        assert!(parse_host_time("2026-01-10T10:15:00.0123").is_some());
    }

    #[test]
    fn response_uses_pascal_case() {
        let resp = InvocationResponse {
            logs: vec!["done".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(&resp).unwrap();
        assert_eq!(json["Logs"][0], "done");
        assert!(json.get("Outputs").is_some() && json.get("ReturnValue").is_some());
    }
}
