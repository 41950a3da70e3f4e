//! SDK namespaces backed by the host (`MemoryHost`), admin checks, unsupported namespaces,
//! and the IDE stub (`bifrost.pyi`) compared against the runtime module.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::{ExecutionStatus, FileLocation};
use common::*;
use serde_json::json;

const SDK_WF: &str = r#"
from bifrost import workflow, config, secrets, organizations, executions, roles, forms, files, oauth, workflows, storage

@workflow(name="sdk_config", description="x")
async def sdk_config():
    before = await config.get("sdk_region", default="none")
    await config.set("sdk_region", "eu")
    after = await config.get("sdk_region")
    fallback = await config.get("sdk_global_only")
    listed = await config.list()
    deleted = await config.delete("sdk_region")
    gone = await config.get("sdk_region", default="gone")
    return [before, after, fallback, listed.get("sdk_region"), listed.get("sdk_global_only"), deleted, gone]

@workflow(name="sdk_other_org", description="x")
async def sdk_other_org():
    return await config.get("sdk_region", org_id="org-2")

@workflow(name="sdk_secrets", description="x")
async def sdk_secrets():
    await secrets.set("org-1--sdk-new", "new-secret-value")
    names = await secrets.list()
    missing = await secrets.get("org-1--nope")
    deleted = await secrets.delete("org-1--sdk-new")
    return {"names": [n for n in names if "sdk" in n], "missing": missing, "deleted": deleted}

@workflow(name="sdk_orgs", description="x")
async def sdk_orgs():
    org = await organizations.create("Fabrikam", domain="fabrikam.com")
    got = await organizations.get(org.id)
    updated = await organizations.update(org.id, name="Fabrikam Ltd")
    listed = await organizations.list()
    deleted = await organizations.delete(org.id)
    return [got.name, got.is_active, updated["name"], len(listed) >= 1, deleted]

@workflow(name="sdk_orgs_denied", description="x")
async def sdk_orgs_denied():
    await organizations.list()

@workflow(name="sdk_roles_forms_execs", description="x")
async def sdk_roles_forms_execs():
    role = await roles.create("Technicians", "Tier 1", ["canExecuteWorkflows"])
    await roles.assign_users(role.id, ["u1", "u2"])
    await roles.assign_forms(role.id, ["f1"])
    users = await roles.list_users(role.id)
    rforms = await roles.list_forms(role.id)
    listed = [r.name for r in await roles.list()]
    await roles.update(role.id, description="Tier 2")
    desc = (await roles.get(role.id)).description
    deleted = await roles.delete(role.id)
    all_forms = await forms.list()
    form = await forms.get("form-1")
    execs = await executions.list(workflow_name="wf_a")
    one = await executions.get("exec-a")
    return {
        "users": users, "forms": rforms, "listed": listed, "desc": desc, "deleted": deleted,
        "form_names": [f.name for f in all_forms], "form_linked": form.linked_workflow,
        "execs": [e["executionId"] for e in execs], "one": one["status"] if one else None,
    }

@workflow(name="sdk_files", description="x")
async def sdk_files():
    files.write("reports/a.txt", "hello")
    files.write_bytes("reports/b.bin", b"\x00\x01", location="temp")
    return {
        "read": files.read("reports/a.txt"),
        "bytes": list(files.read_bytes("reports/b.bin", location="temp")),
        "list": files.list("reports"),
        "exists": [files.exists("reports/a.txt"), files.exists("nope.txt")],
        "deleted": files.delete("reports/a.txt"),
    }

@workflow(name="sdk_files_sync", description="x")
def sdk_files_sync():
    files.write("sync.txt", "from a plain def")
    return files.read("sync.txt")

@workflow(name="sdk_files_escape", description="x")
def sdk_files_escape():
    return files.read("../../etc/passwd")

@workflow(name="sdk_unsupported", description="x")
async def sdk_unsupported(which: str):
    ns = {"oauth": oauth.get, "workflows": workflows.execute, "storage": storage.download}[which]
    return await ns("x")
"#;

/// Writes the SDK workflows once (concurrent rewrites could expose a half-written file to a reload).
async fn setup() {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        add("sdk_wf.py", SDK_WF).await;
    })
    .await;
}

#[tokio::test]
async fn config_and_secrets_go_through_the_host() {
    let env = env();
    env.host
        .set_config(None, "sdk_global_only", json!(42), false);
    setup().await;
    let o = run("sdk_config", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!(["none", "eu", 42, "eu", 42, true, "gone"]))
    );
    let o = run("sdk_other_org", json!({})).await;
    assert_eq!(o.error.unwrap().error_type, "PermissionError");
    let mut req = request("sdk_other_org", json!({}));
    req.context.is_platform_admin = true;
    assert_eq!(
        env.engine.execute(req).await.unwrap().status,
        ExecutionStatus::Success
    );
    let o = run("sdk_secrets", json!({})).await;
    assert_eq!(
        o.result,
        Some(json!({"names": ["org-1--sdk-new"], "missing": null, "deleted": true}))
    );
}

#[tokio::test]
async fn organizations_require_admin() {
    setup().await;
    let o = run("sdk_orgs_denied", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Failed);
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "PermissionError");
    assert!(
        err.message.contains("Platform administrator"),
        "{}",
        err.message
    );
    let mut req = request("sdk_orgs", json!({}));
    req.context.is_platform_admin = true;
    let o = env().engine.execute(req).await.unwrap();
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!(["Fabrikam", true, "Fabrikam Ltd", true, true]))
    );
}

#[tokio::test]
async fn roles_forms_and_executions() {
    let env = env();
    env.host
        .add_form(json!({"id": "form-1", "name": "New User", "linkedWorkflow": "user_onboarding"}));
    env.host.add_execution(json!({"executionId": "exec-a", "workflowName": "wf_a", "status": "Success", "executedBy": "user-1"}));
    env.host.add_execution(json!({"executionId": "exec-b", "workflowName": "wf_a", "status": "Failed", "executedBy": "someone-else"}));
    setup().await;
    let o = run("sdk_roles_forms_execs", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!({
            "users": ["u1", "u2"], "forms": ["f1"], "listed": ["Technicians"], "desc": "Tier 2", "deleted": true,
            "form_names": ["New User"], "form_linked": "user_onboarding",
            "execs": ["exec-a"], "one": "Success",
        }))
    );
}

#[tokio::test]
async fn files_are_synchronous_and_sandboxed() {
    let env = env();
    setup().await;
    let o = run("sdk_files", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(
            json!({"read": "hello", "bytes": [0, 1], "list": ["a.txt"], "exists": [true, false], "deleted": true})
        )
    );
    assert_eq!(
        env.host.file(FileLocation::Temp, "reports/b.bin"),
        Some(vec![0, 1])
    );
    let o = run("sdk_files_sync", json!({})).await;
    assert_eq!(o.result, Some(json!("from a plain def")));
    let o = run("sdk_files_escape", json!({})).await;
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "ValueError");
    assert!(
        err.message.contains("escapes its location"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn unsupported_namespaces_name_the_capability() {
    setup().await;
    for (which, cap) in [
        ("oauth", "oauth.get"),
        ("workflows", "workflows.execute"),
        ("storage", "storage.download"),
    ] {
        let o = run("sdk_unsupported", json!({"which": which})).await;
        let err = o.error.unwrap();
        assert_eq!(err.error_type, "NotImplementedError");
        assert_eq!(
            err.message,
            format!("{cap} is not supported by this Bifrost engine yet")
        );
    }
}

const STUB_CHECK: &str = r#"
import ast, dataclasses, enum, inspect
import bifrost
from bifrost import workflow

def _ast_sig(fn, drop_first):
    a = fn.args
    pos = a.posonlyargs + a.args
    n_def = len(a.defaults)
    out = [(p.arg, "pos", i >= len(pos) - n_def) for i, p in enumerate(pos)]
    if a.vararg:
        out.append((a.vararg.arg, "*", False))
    out += [(p.arg, "kw", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append((a.kwarg.arg, "**", False))
    return out[1:] if drop_first else out

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "pos",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos",
    inspect.Parameter.VAR_POSITIONAL: "*",
    inspect.Parameter.KEYWORD_ONLY: "kw",
    inspect.Parameter.VAR_KEYWORD: "**",
}

def _rt_sig(obj, drop_first):
    out = [(p.name, _KINDS[p.kind], p.default is not inspect.Parameter.empty) for p in inspect.signature(obj).parameters.values()]
    return out[1:] if drop_first else out

def _is_property(node):
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)

def _is_static(node):
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)

def _check_function(where, node, obj, drop_first, problems):
    if _ast_sig(node, drop_first) != _rt_sig(obj, drop_first):
        problems.append(f"{where}: stub {_ast_sig(node, drop_first)} != runtime {_rt_sig(obj, drop_first)}")
    if isinstance(node, ast.AsyncFunctionDef) != inspect.iscoroutinefunction(obj):
        problems.append(f"{where}: async mismatch")

def _check_class(name, node, cls, problems):
    members = {}
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members[item.name] = item
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = item
        elif isinstance(item, ast.Assign):
            for t in item.targets:
                members[t.id] = item
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        stub = {k: v.value.value for k, v in members.items() if isinstance(v, ast.Assign)}
        rt = {m.name: m.value for m in cls}
        if stub != rt:
            problems.append(f"{name}: enum members {stub} != {rt}")
        return
    stub_bases = [ast.unparse(b) for b in node.bases]
    if issubclass(cls, BaseException) and stub_bases != [b.__name__ for b in cls.__bases__]:
        problems.append(f"{name}: bases {stub_bases} != {[b.__name__ for b in cls.__bases__]}")
    if dataclasses.is_dataclass(cls):
        rt_fields = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
        stub_fields = [k for k, v in members.items() if isinstance(v, ast.AnnAssign)]
        if rt_fields != stub_fields:
            problems.append(f"{name}: fields {stub_fields} != {rt_fields}")
    rt_public = {k for k in vars(cls) if not k.startswith("_") and (callable(getattr(cls, k, None)) or isinstance(inspect.getattr_static(cls, k), (property, staticmethod)))}
    stub_public = {k for k, v in members.items() if not k.startswith("_") and isinstance(v, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if rt_public != stub_public:
        problems.append(f"{name}: members only in runtime {sorted(rt_public - stub_public)}, only in stub {sorted(stub_public - rt_public)}")
    for k, v in members.items():
        if not isinstance(v, (ast.FunctionDef, ast.AsyncFunctionDef)) or k == "__getattr__":
            continue
        static = inspect.getattr_static(cls, k, None)
        if static is None:
            continue
        if _is_property(v):
            if not isinstance(static, property):
                problems.append(f"{name}.{k}: stub says property")
            continue
        if _is_static(v) != isinstance(static, staticmethod):
            problems.append(f"{name}.{k}: staticmethod mismatch")
        _check_function(f"{name}.{k}", v, getattr(cls, k), not _is_static(v), problems)

@workflow(name="stub_check", description="compare bifrost.pyi with the runtime module")
def stub_check(stub: str):
    tree = ast.parse(stub)
    problems = []
    top = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                top[t.id] = node
        elif isinstance(node, ast.AnnAssign):
            top[node.target.id] = node
    public_stub = {k for k in top if not k.startswith("_") or k == "__version__"}
    public_rt = set(bifrost.__all__) | {"__version__"}
    if public_stub != public_rt:
        problems.append(f"names only in runtime {sorted(public_rt - public_stub)}, only in stub {sorted(public_stub - public_rt)}")
    for name in sorted(public_stub & public_rt):
        node, obj = top[name], getattr(bifrost, name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _check_function(name, node, obj, False, problems)
        elif isinstance(node, ast.ClassDef):
            _check_class(name, node, obj, problems)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            if getattr(bifrost, node.value.id) is not obj:
                problems.append(f"{name}: alias of {node.value.id} expected")
    return problems
"#;

#[tokio::test]
async fn ide_stub_matches_the_runtime_module() {
    add("sdk_stub_check.py", STUB_CHECK).await;
    let o = run("stub_check", json!({"stub": bifrost_engine::BIFROST_PYI})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result, Some(json!([])));
    // The check catches drift.
    let drifted = bifrost_engine::BIFROST_PYI
        .replace(
            "    async def delete(key: str, org_id: Optional[str] = None) -> bool: ...",
            "    async def delete(key: str) -> bool: ...",
        )
        .replace("class ConfigurationError(WorkflowError): ...", "");
    let o = run("stub_check", json!({"stub": drifted})).await;
    let problems = o.result.unwrap();
    let text = problems.to_string();
    assert!(
        text.contains("only in runtime ['ConfigurationError']"),
        "{text}"
    );
    assert!(text.contains("config.delete: stub"), "{text}");
}

/// The Python SDK refuses other orgs for non-admins, but workspace code can reach the native
/// bridge directly (the import guard is not a sandbox): the Rust side must refuse too.
#[tokio::test]
async fn the_native_bridge_enforces_the_execution_org() {
    let env = env();
    env.host
        .set_config(Some("org-2"), "bridge_secret", json!("org-2-only"), false);
    add(
        "bridge_bypass.py",
        r#"
from bifrost import workflow, _sdk

@workflow(name="bridge_bypass", description="tries to skip the SDK's org check")
async def bridge_bypass():
    internal = _sdk._i
    return list(internal._bridge.host_call_blocking("config.get", "org-2", '{"key": "bridge_secret"}'))
"#,
    )
    .await;
    let o = run("bridge_bypass", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    let reply = o.result.unwrap();
    assert_eq!(reply[0], json!(false), "{reply}");
    assert_eq!(reply[1][0], json!("permission_denied"), "{reply}");
    assert!(!reply.to_string().contains("org-2-only"));
}

/// The rights of a run follow its own code — the tasks it starts and the blocking calls it
/// hands to the loop's executor — and nothing else: not a thread it starts itself, not a task
/// it kept alive past its end, not another run's objects.
#[tokio::test]
async fn rights_follow_the_runs_own_code_and_end_with_it() {
    let env = env();
    env.host
        .set_config(Some("org-1"), "cap_value", json!("org-1-value"), false);
    add(
        "cap_paths.py",
        r#"
import asyncio, contextvars, threading
from bifrost import workflow, config

_kept = []

def _blocking():
    import asyncio as _a
    return _a.run(config.get("cap_value"))

@workflow(name="cap_paths", description="x")
async def cap_paths():
    out = {}
    out["direct"] = await config.get("cap_value")
    out["gathered"] = (await asyncio.gather(config.get("cap_value"), config.get("cap_value")))[0]
    out["task"] = await asyncio.get_running_loop().create_task(config.get("cap_value"))
    out["to_thread"] = await asyncio.to_thread(_blocking)
    box = {}
    def foreign():
        try:
            box["v"] = asyncio.run(config.get("cap_value"))
        except BaseException as e:
            box["v"] = "refused: " + type(e).__name__
    # With the run's contextvars copied, so only the Rust side can refuse it.
    t = threading.Thread(target=contextvars.copy_context().run, args=(foreign,))
    t.start()
    t.join()
    out["own_thread"] = box["v"]
    # A task that outlives the run: it must not keep the run's rights.
    async def later():
        await asyncio.sleep(0.3)
        try:
            return await config.get("cap_value")
        except BaseException as e:
            return "refused: " + type(e).__name__
    _kept.append(asyncio.get_running_loop().create_task(later()))
    return out

@workflow(name="cap_leftover", description="x")
async def cap_leftover():
    await asyncio.sleep(0.5)
    task = _kept.pop()
    return task.result() if task.done() else "not done"
"#,
    )
    .await;
    let o = run("cap_paths", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    let r = o.result.unwrap();
    for path in ["direct", "gathered", "task", "to_thread"] {
        assert_eq!(r[path], "org-1-value", "{path}: {r}");
    }
    assert_eq!(
        r["own_thread"], "refused: PermissionError",
        "a thread the workflow started itself has no rights: {r}"
    );
    let o = run("cap_leftover", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!("refused: PermissionError")),
        "the leftover task of a finished run kept its rights"
    );
}
