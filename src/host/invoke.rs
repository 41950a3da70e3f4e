//! Payload-mode invocations, implemented once for every kind of function.
//!
//! `POST /{FunctionName}` from the host lands here. HTTP-triggered functions (those whose input
//! has the shape of an HTTP request) are bridged onto the same routes the standalone server and
//! forwarded requests use, so there is exactly one HTTP API. Timer and queue functions register an
//! [`InvocationHandler`] under their function name; adding one needs nothing else.
//!
//! Invariant: a failed invocation answers a non-2xx status, which is how the host learns it failed
//! (and retries or poisons queue messages); the body still carries `Logs` for the invocation log.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::envelope::{HttpOutput, HttpRequestData, InvocationRequest, InvocationResponse};

/// The output binding name our HTTP functions use for their response (checked by packaging).
pub const HTTP_OUTPUT_BINDING: &str = "res";

/// A failed invocation; the message goes to the invocation log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvocationError(pub String);

/// Handles the invocations of one non-HTTP function (a timer or queue trigger).
pub trait InvocationHandler: Send + Sync {
    fn invoke(
        &self,
        request: InvocationRequest,
    ) -> BoxFuture<'_, Result<InvocationResponse, InvocationError>>;
}

/// The HTTP API as the bridge sees it: one request in, one response out.
pub trait HttpApi: Send + Sync {
    fn call(&self, request: http::Request<Bytes>) -> BoxFuture<'_, http::Response<Bytes>>;
}

/// Outcome of dispatching one envelope.
pub enum Dispatch {
    Done(InvocationResponse),
    Failed(InvocationResponse),
    UnknownFunction,
}

#[derive(Default, Clone)]
pub struct Invocations {
    handlers: HashMap<String, Arc<dyn InvocationHandler>>,
}

impl Invocations {
    /// Registers the handler for `function_name` (case-insensitive, as the host treats names).
    pub fn register(&mut self, function_name: &str, handler: Arc<dyn InvocationHandler>) {
        self.handlers
            .insert(function_name.to_ascii_lowercase(), handler);
    }

    pub fn dispatch<'a>(
        &'a self,
        function_name: &'a str,
        request: InvocationRequest,
        api: &'a dyn HttpApi,
    ) -> BoxFuture<'a, Dispatch> {
        Box::pin(async move {
            if let Some(handler) = self.handlers.get(&function_name.to_ascii_lowercase()) {
                return match handler.invoke(request).await {
                    Ok(response) => Dispatch::Done(response),
                    Err(e) => {
                        tracing::warn!(function = function_name, error = %e, "invocation failed");
                        Dispatch::Failed(InvocationResponse {
                            logs: vec![format!("{function_name} failed: {e}")],
                            ..Default::default()
                        })
                    }
                };
            }
            match request.http_request() {
                Some((_, http_request)) => match bridge_http(&http_request, api).await {
                    Ok(response) => Dispatch::Done(response),
                    Err(e) => Dispatch::Failed(InvocationResponse {
                        logs: vec![format!("{function_name}: malformed HTTP trigger data: {e}")],
                        ..Default::default()
                    }),
                },
                None => Dispatch::UnknownFunction,
            }
        })
    }
}

/// Replays the trigger's request against the HTTP API and wraps the answer as `Outputs.res`.
async fn bridge_http(
    data: &HttpRequestData,
    api: &dyn HttpApi,
) -> Result<InvocationResponse, String> {
    let method = http::Method::from_bytes(data.method.to_ascii_uppercase().as_bytes())
        .map_err(|e| format!("Method: {e}"))?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(data.path_and_query()?);
    for (name, values) in &data.headers {
        for value in values {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let request = builder
        .body(Bytes::from(data.body_bytes()?))
        .map_err(|e| format!("request: {e}"))?;
    let response = api.call(request).await;

    let mut headers = BTreeMap::new();
    for (name, value) in response.headers() {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_owned(), v.to_owned());
        }
    }
    let status_code = response.status().as_u16();
    // Our API answers JSON or text; anything else would be mangled by the host's string body.
    let body = String::from_utf8_lossy(response.body()).into_owned();
    let output = HttpOutput {
        status_code,
        headers,
        body,
    };
    let mut outputs = Map::new();
    outputs.insert(
        HTTP_OUTPUT_BINDING.to_owned(),
        serde_json::to_value(output).map_err(|e| e.to_string())?,
    );
    Ok(InvocationResponse {
        outputs,
        logs: Vec::new(),
        return_value: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl HttpApi for Echo {
        fn call(&self, request: http::Request<Bytes>) -> BoxFuture<'_, http::Response<Bytes>> {
            Box::pin(async move {
                let text = format!(
                    "{} {} {}",
                    request.method(),
                    request.uri(),
                    String::from_utf8_lossy(request.body())
                );
                http::Response::builder()
                    .status(201)
                    .header("content-type", "text/plain")
                    .body(Bytes::from(text))
                    .unwrap()
            })
        }
    }

    struct Timer;
    impl InvocationHandler for Timer {
        fn invoke(
            &self,
            request: InvocationRequest,
        ) -> BoxFuture<'_, Result<InvocationResponse, InvocationError>> {
            Box::pin(async move {
                let timer = request
                    .timer("myTimer")
                    .ok_or_else(|| InvocationError("no timer".into()))?;
                Ok(InvocationResponse {
                    logs: vec![format!("past due: {}", timer.is_past_due)],
                    ..Default::default()
                })
            })
        }
    }

    fn envelope(json: &str) -> InvocationRequest {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn registered_handlers_get_their_invocations() {
        let mut inv = Invocations::default();
        inv.register("Cleanup", Arc::new(Timer));
        let req = envelope(
            r#"{"Data":{"myTimer":{"ScheduleStatus":null,"IsPastDue":true}},"Metadata":{}}"#,
        );
        match inv.dispatch("cleanup", req, &Echo).await {
            Dispatch::Done(r) => assert_eq!(r.logs, ["past due: true"]),
            _ => panic!("expected Done"),
        }
        let failing = envelope(r#"{"Data":{},"Metadata":{}}"#);
        assert!(matches!(
            inv.dispatch("cleanup", failing, &Echo).await,
            Dispatch::Failed(_)
        ));
    }

    #[tokio::test]
    async fn http_triggers_are_bridged_to_the_api() {
        let inv = Invocations::default();
        let req = envelope(
            r#"{"Data":{"req":{"Url":"http://localhost:7071/api/health?x=1","Method":"post","Headers":{"X-A":["1"]},"Body":"hi"}},"Metadata":{}}"#,
        );
        match inv.dispatch("http_api", req, &Echo).await {
            Dispatch::Done(r) => {
                let res = &r.outputs[HTTP_OUTPUT_BINDING];
                assert_eq!(res["statusCode"], 201);
                assert_eq!(res["body"], "POST /api/health?x=1 hi");
                assert_eq!(res["headers"]["content-type"], "text/plain");
            }
            _ => panic!("expected Done"),
        }
    }

    #[tokio::test]
    async fn unknown_functions_are_reported() {
        let inv = Invocations::default();
        let req = envelope(r#"{"Data":{"msg":"hello"},"Metadata":{}}"#);
        assert!(matches!(
            inv.dispatch("nope", req, &Echo).await,
            Dispatch::UnknownFunction
        ));
    }
}
