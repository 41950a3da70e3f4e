//! Engine start-up validation and shutdown (its own binary: stopping the process-global engine is final).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bifrost_engine::{Engine, EngineConfig, EngineError, ExecutionRequest, ExecutionStatus};

#[test]
fn start_validates_config_then_stop_is_final() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let handle = Some(rt.handle().clone());
    let bad = Engine::start(EngineConfig {
        threads: 0,
        runtime: handle.clone(),
        ..EngineConfig::default()
    });
    assert!(matches!(bad, Err(EngineError::InvalidConfig(m)) if m.contains("threads")));
    let missing = tmp.path().join("nope");
    let bad = Engine::start(EngineConfig {
        workspace_dirs: vec![missing.clone()],
        runtime: handle.clone(),
        ..EngineConfig::default()
    });
    assert!(matches!(bad, Err(EngineError::MissingWorkspace(p)) if p == missing));
    let bad = Engine::start(EngineConfig {
        workspace_dirs: vec![tmp.path().into()],
        ..EngineConfig::default()
    });
    assert!(matches!(bad, Err(EngineError::InvalidConfig(m)) if m.contains("tokio runtime")));

    std::fs::write(
        tmp.path().join("stop_wf.py"),
        "import asyncio\nfrom bifrost import workflow\n@workflow(name='stop_sleep', description='d')\nasync def stop_sleep():\n    await asyncio.sleep(60)\n",
    )
    .unwrap();
    let engine = Engine::start(EngineConfig {
        workspace_dirs: vec![tmp.path().into()],
        threads: 1,
        runtime: handle.clone(),
        ..EngineConfig::default()
    })
    .unwrap();
    let again = Engine::start(EngineConfig {
        workspace_dirs: vec![tmp.path().into()],
        runtime: handle,
        ..EngineConfig::default()
    });
    assert!(matches!(again, Err(EngineError::AlreadyStarted)));

    rt.block_on(async {
        let e2 = engine.clone();
        let req = ExecutionRequest {
            name: "stop_sleep".into(),
            ..ExecutionRequest::default()
        };
        let running = tokio::spawn(async move { e2.execute(req).await.unwrap() });
        while engine.running() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        engine.stop();
        let o = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(o.status, ExecutionStatus::Success);
        let req = ExecutionRequest {
            name: "stop_sleep".into(),
            ..ExecutionRequest::default()
        };
        assert!(matches!(
            engine.execute(req).await,
            Err(EngineError::Stopped)
        ));
    });
}
