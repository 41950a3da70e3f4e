//! The drift test of the SDK's operations: the Rust operation table (`SDK_OPERATIONS`, declared
//! once in `host.rs`), the Python module that calls it (`python/bifrost/_sdk.py`) and the IDE
//! stub (`bifrost.pyi`) must name the same operations.
//!
//! An operation `ns.fn` is called by `_sdk.py` from inside `class ns` (which defines `fn`), and
//! the stub declares `ns.fn`. Signatures of the stub against the runtime module are compared by
//! `sdk.rs::ide_stub_matches_the_runtime_module`; this test needs no interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

const SDK_PY: &str = include_str!("../python/bifrost/_sdk.py");

/// Classes at the top level of a Python file and the functions defined directly in them.
fn classes(source: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if !line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            current = None;
        } else if let (Some(class), Some(name)) = (&current, method_name(line)) {
            out.entry(class.clone()).or_default().insert(name);
        }
    }
    out
}

/// `name` of a line `    def name(` or `    async def name(` (one level of indentation).
fn method_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("    ")?;
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("def ")?;
    rest.split_once('(').map(|(name, _)| name.to_owned())
}

/// Every `_i.host("op", ...)` / `_i.host_blocking("op", ...)` call: the op and the top-level
/// class it is made from.
fn host_calls(source: &str) -> Vec<(String, Option<String>)> {
    let mut calls = Vec::new();
    let mut class: Option<String> = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            class = rest.split([':', '(']).next().map(str::to_owned);
        } else if !line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            class = None;
        }
        for prefix in ["_i.host(\"", "_i.host_blocking(\""] {
            for (at, _) in line.match_indices(prefix) {
                let rest = &line[at + prefix.len()..];
                if let Some((op, _)) = rest.split_once('"') {
                    calls.push((op.to_owned(), class.clone()));
                }
            }
        }
    }
    calls
}

/// Every disagreement between the operation table, `_sdk.py` and the stub.
fn drift(ops: &[&str], sdk_py: &str, stub: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let calls = host_calls(sdk_py);
    let called: BTreeSet<&str> = calls.iter().map(|(op, _)| op.as_str()).collect();
    let declared: BTreeSet<&str> = ops.iter().copied().collect();
    for op in declared.difference(&called) {
        problems.push(format!(
            "{op}: in the Rust table but _sdk.py never calls it"
        ));
    }
    for op in called.difference(&declared) {
        problems.push(format!(
            "{op}: _sdk.py calls it but the Rust table has no such operation"
        ));
    }
    let python = classes(sdk_py);
    let stubbed = classes(stub);
    for (op, class) in &calls {
        let Some((namespace, _)) = op.split_once('.') else {
            problems.push(format!("{op}: not of the form namespace.function"));
            continue;
        };
        if class.as_deref() != Some(namespace) {
            problems.push(format!(
                "{op}: called from {class:?} in _sdk.py, not from class {namespace}"
            ));
        }
    }
    for op in &declared {
        let Some((namespace, function)) = op.split_once('.') else {
            problems.push(format!("{op}: not of the form namespace.function"));
            continue;
        };
        if !python
            .get(namespace)
            .is_some_and(|fns| fns.contains(function))
        {
            problems.push(format!("{op}: _sdk.py has no {namespace}.{function}"));
        }
        if !stubbed
            .get(namespace)
            .is_some_and(|fns| fns.contains(function))
        {
            problems.push(format!(
                "{op}: bifrost.pyi does not declare {namespace}.{function}"
            ));
        }
    }
    problems
}

#[test]
fn the_stub_the_python_module_and_the_operation_table_agree() {
    let problems = drift(
        bifrost_engine::SDK_OPERATIONS,
        SDK_PY,
        bifrost_engine::BIFROST_PYI,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(bifrost_engine::SDK_OPERATIONS.contains(&"config.get"));
}

#[test]
fn drift_is_found_in_each_direction() {
    let ops = bifrost_engine::SDK_OPERATIONS;
    let stub = bifrost_engine::BIFROST_PYI;

    // An operation only Rust knows.
    let mut more: Vec<&str> = ops.to_vec();
    more.push("config.rename");
    let problems = drift(&more, SDK_PY, stub);
    assert!(
        problems
            .iter()
            .any(|p| p == "config.rename: in the Rust table but _sdk.py never calls it"),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("bifrost.pyi does not declare config.rename")),
        "{problems:#?}"
    );

    // A Python call Rust does not serve.
    let renamed = SDK_PY.replace("\"roles.list_forms\"", "\"roles.forms\"");
    let problems = drift(ops, &renamed, stub);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("roles.forms: _sdk.py calls it")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("roles.list_forms: in the Rust table")),
        "{problems:#?}"
    );

    // A call made from the wrong namespace.
    let moved = SDK_PY.replace(
        "return _rec(await _i.host(\"forms.list\", {}), Form)",
        "return _rec(await _i.host(\"roles.list\", {}), Form)",
    );
    let problems = drift(ops, &moved, stub);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("roles.list: called from Some(\"forms\")")),
        "{problems:#?}"
    );

    // A stub that lost a declaration.
    let thinner = stub.replace(
        "    @staticmethod\n    async def list_users(role_id: str) -> list[str]: ...\n",
        "",
    );
    assert_ne!(thinner, stub);
    let problems = drift(ops, SDK_PY, &thinner);
    assert_eq!(
        problems,
        ["roles.list_users: bifrost.pyi does not declare roles.list_users"]
    );
}
