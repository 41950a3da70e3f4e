//! The custom-handler contract and the HTTP conventions, tested against the running binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ServerBuilder, bin, client, free_port, repo_root};

#[tokio::test]
async fn standalone_serves_health_with_version_storage_python_and_workspace() {
    let server = ServerBuilder::new().start();
    let res = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["storage"]["backend"], "embedded");
    assert_eq!(body["storage"]["status"], "ok");
    assert!(
        body["python"]["version"]
            .as_str()
            .unwrap()
            .starts_with("3."),
        "{body}"
    );
    assert!(
        body["workspace"]["workflows"].as_u64().unwrap() > 0,
        "{body}"
    );
}

#[tokio::test]
async fn readiness_probe_and_unknown_routes() {
    let server = ServerBuilder::new().start();
    let c = client();
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    let res = c
        .get(server.url("/api/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "NotFound");
    assert!(body["message"].as_str().unwrap().len() > 5);
}

#[tokio::test]
async fn caller_request_id_is_echoed() {
    let server = ServerBuilder::new().start();
    let res = client()
        .get(server.url("/api/health"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-42");
}

/// Shaped like the host's payload-mode request for an HTTP trigger (azure-and-integrations §1.5).
fn http_envelope(url: &str, method: &str, body: Option<&str>) -> Value {
    json!({
        "Data": {
            "req": {
                "Url": url,
                "Method": method,
                "Query": { "code": "ENVELOPE-CODE-SECRET" },
                "Headers": { "Accept": ["application/json"], "x-functions-key": ["ENVELOPE-KEY-SECRET"] },
                "Identities": [ { "AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": [] } ],
                "Body": body,
            }
        },
        "Metadata": { "sys": { "MethodName": "http_api", "UtcNow": "2026-11-26T10:00:00.1234567Z", "RandGuid": "6f2b1f8e-8a8c-4d7e-9a59-2b2b3c1d0e0f" } }
    })
}

#[tokio::test]
async fn under_the_functions_host_forwarded_and_envelope_requests_work() {
    let port = free_port();
    let mut server = ServerBuilder::new()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", &port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "worker-1")
        .start();
    assert_eq!(server.port, port);
    let c = client();

    // Forwarded: the original path with /api, the host's headers, the caller's key in both places.
    let res = c
        .get(format!(
            "http://127.0.0.1:{port}/api/health?code=FORWARDED-CODE-SECRET"
        ))
        .header(
            "X-Azure-Functions-InvocationId",
            "3d2c6a77-1f0e-4b8e-9a35-2a1f0c9b8d7e",
        )
        .header("X-Azure-Functions-HostVersion", "4.1040.300.0")
        .header("User-Agent", "Azure-Functions-Host/4.1040.300.0")
        .header("x-functions-key", "FORWARDED-KEY-SECRET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-request-id"],
        "3d2c6a77-1f0e-4b8e-9a35-2a1f0c9b8d7e"
    );

    // Payload mode: POST /{FunctionName} with {Data, Metadata}; the answer is {Outputs, Logs, ReturnValue}.
    let res = c
        .post(format!("http://127.0.0.1:{port}/http_api"))
        .json(&http_envelope(
            "https://bifrost.azurewebsites.net/api/health?code=ENVELOPE-CODE-SECRET",
            "GET",
            None,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    let out = &body["Outputs"]["res"];
    assert_eq!(out["statusCode"], 200);
    assert_eq!(out["headers"]["content-type"], "application/json");
    let inner: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["functionsHost"], true);
    assert!(body["Logs"].is_array());
    assert!(body.get("ReturnValue").is_some());

    // An envelope for a route that doesn't exist still succeeds as an invocation, with a 404 inside.
    let res = c
        .post(format!("http://127.0.0.1:{port}/http_api"))
        .json(&http_envelope(
            "http://localhost/api/nope",
            "POST",
            Some("{}"),
        ))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["Outputs"]["res"]["statusCode"], 404);

    // Unknown non-HTTP function: the invocation fails (non-2xx) with a JSON error.
    let res = c
        .post(format!("http://127.0.0.1:{port}/NoSuchTimer"))
        .json(&json!({"Data": {"myTimer": {"ScheduleStatus": null, "IsPastDue": false}}, "Metadata": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    assert!(server.terminate().success());
    // Under the host, logs are JSON lines.
    let logs = server.stderr();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    // And no key, code or secret made it into them.
    for secret in [
        "FORWARDED-CODE-SECRET",
        "FORWARDED-KEY-SECRET",
        "ENVELOPE-CODE-SECRET",
        "ENVELOPE-KEY-SECRET",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    assert!(
        logs.contains("code=***"),
        "the redacted query should still be logged:\n{logs}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_with_the_parser_position() {
    let server = ServerBuilder::new().under_host().start();
    let res = client()
        .post(server.url("/some_timer"))
        .header("content-type", "application/json")
        .body("{\n  \"Data\": {\n    \"x\": tRue\n  }\n}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "InvalidJson");
    assert_eq!(body["details"]["line"], 3);
    assert_eq!(body["details"]["column"], 11);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_streamed() {
    let server = ServerBuilder::new()
        .under_host()
        .env("BIFROST_MAX_BODY_BYTES", "2048")
        .start();
    let big = format!("{{\"Data\":{{\"x\":\"{}\"}}}}", "a".repeat(4096));
    let res = client()
        .post(server.url("/some_timer"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "PayloadTooLarge");
    assert_eq!(body["details"]["limitBytes"], 2048);

    // Chunked, with no Content-Length to trust.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = client()
        .post(server.url("/some_timer"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[test]
fn an_invalid_setting_stops_startup_naming_it() {
    let (status, stderr) = ServerBuilder::new()
        .env("BIFROST_PORT", "seventy")
        .env("BIFROST_STORAGE", "mongodb")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("BIFROST_PORT"), "{stderr}");
    assert!(stderr.contains("BIFROST_STORAGE"), "{stderr}");
}

#[tokio::test]
async fn local_settings_json_values_apply_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("local.settings.json"),
        json!({"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom", "BIFROST_PORT": port.to_string(), "BIFROST_MAX_BODY_BYTES": "4096"}}).to_string(),
    )
    .unwrap();
    let server = ServerBuilder::new()
        .cwd(dir.path())
        .port_from_settings()
        .env("BIFROST_MAX_BODY_BYTES", "2048")
        .start();
    assert_eq!(server.port, port, "BIFROST_PORT from local.settings.json");
    let res = client()
        .post(server.url("/api/workflows/execute"))
        .body("x".repeat(3000))
        .send()
        .await
        .unwrap();
    // Unauthenticated callers are refused before their body is read; the limit shows in the
    // settings summary the server logs at start.
    assert_eq!(res.status(), 401);
    assert!(
        server.stderr().contains("max_body_bytes=2048"),
        "the environment's 2048 wins over the file's 4096: {}",
        server.stderr()
    );

    std::fs::write(
        dir.path().join("local.settings.json"),
        r#"{"Values":{"BIFROST_PORT":7071}}"#,
    )
    .unwrap();
    let (status, stderr) = ServerBuilder::new().cwd(dir.path()).run_to_exit();
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("Values.BIFROST_PORT"), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let mut server = ServerBuilder::new().under_host().start();
    let body =
        br#"{"Data":{"req":{"Url":"http://localhost/api/health","Method":"GET"}},"Metadata":{}}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /http_api HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    crate::support::signal(&server.child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    // The request was in flight when the signal came: it still completes.
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"statusCode\":200"), "{response}");
    assert!(server.wait_exit().success());
    // New connections are refused after shutdown.
    assert!(TcpStream::connect(("127.0.0.1", server.port)).is_err());
}

#[test]
fn package_builds_a_functions_app_folder_that_follows_the_host_rules() {
    let out = tempfile::tempdir().unwrap();
    let app = out.path().join("app");
    let status = std::process::Command::new(bin())
        .args(["package", app.to_str().unwrap(), "--source"])
        .arg(repo_root())
        .arg("--workspace")
        .arg(repo_root().join("examples/workspace"))
        .status()
        .unwrap();
    assert!(status.success());

    // host.json at the root, pointing at the executable that sits beside it.
    let host: Value =
        serde_json::from_str(&std::fs::read_to_string(app.join("host.json")).unwrap()).unwrap();
    let exe = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap();
    let meta = std::fs::metadata(app.join(exe)).unwrap();
    assert!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0,
        "executable bit"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");

    // Every function folder at the root, validated independently of the packager.
    let functions = bifrost::host::function_json::load_functions(&app).unwrap();
    assert!(functions.contains_key("http_api"));
    for (name, f) in &functions {
        let re_ok = name.len() <= 128
            && name.chars().next().unwrap().is_ascii_alphabetic()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        assert!(re_ok, "{name}");
        let trigger = f.trigger().unwrap();
        if let Some(route) = trigger.properties.get("route").and_then(|r| r.as_str()) {
            let r = route.trim_matches('/').to_ascii_lowercase();
            assert!(
                !r.starts_with("admin") && !r.starts_with("runtime"),
                "{route}"
            );
        }
    }
    assert!(bifrost::host::function_json::validate_app(&functions).is_empty());
    assert!(app.join("workspace").is_dir());

    // A definition that breaks a host rule is refused and nothing is written.
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("host.json"), src.path().join("host.json")).unwrap();
    std::fs::create_dir_all(src.path().join("functions/admin_api")).unwrap();
    std::fs::write(
        src.path().join("functions/admin_api/function.json"),
        r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"admin/keys"},{"type":"http","direction":"out","name":"res"}]}"#,
    )
    .unwrap();
    let bad_out = out.path().join("bad");
    let output = std::process::Command::new(bin())
        .args([
            "package",
            bad_out.to_str().unwrap(),
            "--source",
            src.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("built-in admin/runtime routes"));
    assert!(!bad_out.exists());
}

#[tokio::test]
async fn the_server_reloads_changed_workspace_files() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("first.py"),
        "from bifrost import workflow\n\n@workflow(name=\"first\", description=\"x\")\nasync def first():\n    return 1\n",
    )
    .unwrap();
    let server = ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .start();
    let health = || async {
        let body: Value = client()
            .get(server.url("/api/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["workspace"].clone()
    };
    assert_eq!(health().await["workflows"], 1);
    std::fs::write(
        ws.path().join("second.py"),
        "from bifrost import workflow\n\n@workflow(name=\"second\", description=\"x\")\nasync def second():\n    return 2\n",
    )
    .unwrap();
    std::fs::write(
        ws.path().join("third.py"),
        "import nonexistent_module_xyz\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let w = health().await;
        if w["workflows"] == 2 && w["importErrors"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workspace changes were not picked up: {w}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
