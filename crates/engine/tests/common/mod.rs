//! Shared test harness: one engine per test binary (the interpreter is process-global).
//!
//! Workspace: a fresh temp dir (tests add uniquely named files) plus, when asked,
//! the repository's `examples/workspace`. Host: an in-memory `MemoryHost`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bifrost_engine::{
    Caller, Engine, EngineConfig, ExecutionContextInfo, ExecutionOutcome, ExecutionRequest,
    ImportViolation, MemoryHost, Organization,
};
use serde_json::{Map, Value};

pub struct Env {
    pub engine: Engine,
    pub dir: PathBuf,
    pub host: Arc<MemoryHost>,
    pub violations: Arc<Mutex<Vec<ImportViolation>>>,
    _tmp: tempfile::TempDir,
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static ENV: OnceLock<Env> = OnceLock::new();

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace")
}

pub fn env() -> &'static Env {
    env_with(false)
}

pub fn env_with(examples: bool) -> &'static Env {
    ENV.get_or_init(|| {
        let rt = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        });
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("workspace");
        std::fs::create_dir_all(dir.join(".packages")).unwrap();
        // A "pip install --target .packages" stand-in: importable, never scanned.
        std::fs::write(dir.join(".packages/ws_vendored.py"), "VALUE = 'vendored'\n").unwrap();
        let host = Arc::new(MemoryHost::new());
        let violations = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&violations);
        let mut dirs = vec![dir.clone()];
        if examples {
            dirs.push(examples_dir());
        }
        let engine = Engine::start(EngineConfig {
            workspace_dirs: dirs,
            threads: 2,
            host: host.clone(),
            runtime: Some(rt.handle().clone()),
            on_import_violation: Some(Arc::new(move |v| sink.lock().unwrap().push(v))),
            ..EngineConfig::default()
        })
        .expect("engine starts");
        Env {
            engine,
            dir: dir.canonicalize().unwrap(),
            host,
            violations,
            _tmp: tmp,
        }
    })
}

/// Writes `name` (relative path) into the temp workspace and reloads it.
pub async fn add(name: &str, source: &str) -> PathBuf {
    let env = env();
    let path = env.dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, source).unwrap();
    env.engine
        .reload(std::slice::from_ref(&path))
        .await
        .unwrap();
    path
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("input must be an object, got {other}"),
    }
}

pub fn request(name: &str, input: Value) -> ExecutionRequest {
    ExecutionRequest {
        name: name.to_owned(),
        input: obj(input),
        context: ExecutionContextInfo {
            caller: Caller::new("user-1", "amy@example.com", "Amy Admin"),
            organization: Some(Organization {
                id: "org-1".into(),
                name: "Contoso".into(),
                is_active: true,
            }),
            is_platform_admin: false,
            is_function_key: false,
        },
        ..ExecutionRequest::default()
    }
}

pub async fn run(name: &str, input: Value) -> ExecutionOutcome {
    env().engine.execute(request(name, input)).await.unwrap()
}

pub async fn run_with_timeout(name: &str, input: Value, timeout: Duration) -> ExecutionOutcome {
    let mut req = request(name, input);
    req.timeout = Some(timeout);
    env().engine.execute(req).await.unwrap()
}

pub fn messages(o: &ExecutionOutcome) -> Vec<String> {
    o.logs.iter().map(|l| l.message.clone()).collect()
}
