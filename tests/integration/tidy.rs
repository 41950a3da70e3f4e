//! Tidy checks over the source tree, the way rust-analyzer keeps its house: the layering of
//! `src/` (which module may import which, read from `crate::` paths outside test code) and the
//! module doc comment every `.rs` file opens with. ARCHITECTURE.md describes the layers; this
//! test is what keeps that description true.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers of `src/`, lowest first. A module may import modules of lower layers only (and
/// itself). A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    // Foundations: no dependency on other modules of the crate.
    &["cache", "cli", "host", "schedules", "sdk_files"],
    // Configuration (validates schedule expressions), then what is built on it.
    &["settings"],
    &["backends", "telemetry", "auth"],
    &["audit"],
    // Domain services (organizations, users, roles, config, secrets).
    &["domain"],
    // The runner: the one way into the engine.
    &["executions"],
    &["forms"],
    // What workflow code reaches through the SDK.
    &["sdk_host"],
    &["jobs"],
    // Application state: every service, below every route.
    &["state"],
    // The HTTP API.
    &["http"],
    // Serving and the command line.
    &["server"],
    &["app", "commands"],
    &["main", "lib"],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !matches!(name.as_str(), "target" | "node_modules" | ".venv") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` items (tests may reach anywhere).
fn production_code(source: &str) -> &str {
    match source.find("#[cfg(test)]") {
        Some(at) => &source[..at],
        None => source,
    }
}

/// The top-level modules a file refers to through `crate::` paths, with the line.
fn crate_references(code: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a::B, c};`: every path of the group (one line, as rustfmt
                // writes short groups; longer ones are broken into one path per line below).
                for part in group.split([',', '}']) {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((name, n + 1));
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((name, n + 1));
            }
            rest = after;
        }
    }
    // Multi-line `use crate::{` groups: the first segment of each path inside.
    let mut in_group = false;
    for (n, line) in code.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.ends_with("crate::{") {
            in_group = true;
            continue;
        }
        if in_group {
            if trimmed.starts_with('}') {
                in_group = false;
                continue;
            }
            for part in trimmed.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((name, n + 1));
                }
            }
        }
    }
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn modules_import_only_lower_layers() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut unplaced = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = layer_of(&module) else {
            unplaced.insert(module, relative.display().to_string());
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for (target, line) in crate_references(production_code(&source)) {
            if target == module {
                continue;
            }
            match layer_of(&target) {
                Some(layer) if layer < own => {}
                Some(_) => violations.push(format!(
                    "src/{}:{line}: `{module}` may not import `{target}` (same or higher layer)",
                    relative.display()
                )),
                None => violations.push(format!(
                    "src/{}:{line}: `crate::{target}` is not a module of the layer table",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules missing from the layer table in tests/integration/tidy.rs: {unplaced:?}"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layer_check_sees_every_form_of_import() {
    let code = "use crate::http::ApiState;\nuse crate::{audit::AuditLog, domain};\nuse crate::{\n    forms::x,\n    jobs,\n};\nlet x = crate::state::AppState::new();\n// crate::server in a comment\n";
    let names: Vec<String> = crate_references(code).into_iter().map(|(n, _)| n).collect();
    for expected in ["http", "audit", "domain", "forms", "jobs", "state"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "server"));
    assert!(layer_of("http").unwrap() > layer_of("state").unwrap());
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["src", "crates", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let source = std::fs::read_to_string(file).unwrap();
            !source.trim_start().starts_with("//!")
        })
        .map(|file| file.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc comment at the top:\n{}",
        missing.join("\n")
    );
}
