//! `bifrost package`: assembles a deployable Functions app folder.
//!
//! Layout produced (what the host expects at its app root, `azure-and-integrations.md` §1.1):
//! `host.json`, one `<FunctionName>/function.json` per function, the `bifrost` executable,
//! optionally the workspace folder (with its `.packages`), and optionally the binary's own Python
//! under `python/lib/` (the shared libpython and the standard library, which the binary finds
//! through its `$ORIGIN` rpath and `PYTHONHOME`; see `bifrost_engine::use_packaged_python`).
//! Everything is validated first; nothing is written when a rule is broken.

use std::path::{Path, PathBuf};

use super::function_json::{load_functions, validate_app};

/// The executable name `host.json` points at.
pub const EXECUTABLE_NAME: &str = "bifrost";

#[derive(Debug)]
pub struct PackageOptions {
    /// Folder holding `host.json` and `functions/` (the repository root).
    pub source: PathBuf,
    /// The binary to ship.
    pub binary: PathBuf,
    /// Optional workspace folder to ship as `workspace/`.
    pub workspace: Option<PathBuf>,
    /// Output folder; must not exist or be empty.
    pub out: PathBuf,
    /// The Python to ship as `python/`, if any.
    pub python: Option<bifrost_engine::PythonLayout>,
}

/// Parts of the standard library a server never imports: tests, GUI toolkits, installers and
/// third-party packages (workspaces bring their own in `.packages`).
const STDLIB_SKIPPED: &[&str] = &[
    "__pycache__",
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "site-packages",
    "dist-packages",
    "lib2to3",
];

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks `host.json` for the custom-handler settings Bifrost relies on.
pub fn validate_host_json(text: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("host.json is not valid JSON: {e}"))?;
    if doc["version"] != "2.0" {
        return Err("host.json: version must be \"2.0\"".into());
    }
    let handler = &doc["customHandler"];
    if handler["description"]["defaultExecutablePath"] != EXECUTABLE_NAME {
        return Err(format!(
            "host.json: customHandler.description.defaultExecutablePath must be {EXECUTABLE_NAME:?}"
        ));
    }
    if handler["description"]["arguments"] != serde_json::json!(["serve"]) {
        return Err("host.json: customHandler.description.arguments must be [\"serve\"]".into());
    }
    // It sits beside `description`, not inside it; inside, the host silently ignores it.
    if handler["enableForwardingHttpRequest"] != true {
        return Err("host.json: customHandler.enableForwardingHttpRequest must be true".into());
    }
    if doc["extensions"]["http"]["routePrefix"] != "api" {
        return Err("host.json: extensions.http.routePrefix must be \"api\"".into());
    }
    Ok(())
}

/// Builds the app folder and returns the files written, relative to `out`.
pub fn package(options: &PackageOptions) -> Result<Vec<PathBuf>, PackageError> {
    let host_json_path = options.source.join("host.json");
    let host_json = std::fs::read_to_string(&host_json_path).map_err(io(&host_json_path))?;
    validate_host_json(&host_json).map_err(PackageError::Invalid)?;
    let functions_dir = options.source.join("functions");
    let functions = load_functions(&functions_dir).map_err(PackageError::Invalid)?;
    if functions.is_empty() {
        return Err(PackageError::Invalid(format!(
            "{} holds no <name>/function.json",
            functions_dir.display()
        )));
    }
    let violations = validate_app(&functions);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(PackageError::Invalid(format!(
            "function definitions break the host's rules:\n  {}",
            list.join("\n  ")
        )));
    }
    if !options.binary.is_file() {
        return Err(PackageError::Invalid(format!(
            "binary {} does not exist",
            options.binary.display()
        )));
    }
    if options.out.exists() {
        let mut entries = std::fs::read_dir(&options.out).map_err(io(&options.out))?;
        if entries.next().is_some() {
            return Err(PackageError::Invalid(format!(
                "output folder {} is not empty",
                options.out.display()
            )));
        }
    }

    let mut written = Vec::new();
    std::fs::create_dir_all(&options.out).map_err(io(&options.out))?;
    let target = options.out.join("host.json");
    std::fs::write(&target, &host_json).map_err(io(&target))?;
    written.push(PathBuf::from("host.json"));
    for name in functions.keys() {
        let dir = options.out.join(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let from = functions_dir.join(name).join("function.json");
        let to = dir.join("function.json");
        std::fs::copy(&from, &to).map_err(io(&from))?;
        written.push(PathBuf::from(name).join("function.json"));
    }
    let exe = options.out.join(EXECUTABLE_NAME);
    std::fs::copy(&options.binary, &exe).map_err(io(&options.binary))?;
    set_executable(&exe)?;
    written.push(PathBuf::from(EXECUTABLE_NAME));
    if let Some(workspace) = &options.workspace {
        copy_tree(
            workspace,
            &options.out.join("workspace"),
            &mut written,
            Path::new("workspace"),
            &["__pycache__"],
        )?;
    }
    if let Some(python) = &options.python {
        let lib = Path::new(bifrost_engine::PACKAGED_PYTHON_DIR).join("lib");
        let dir = options.out.join(&lib);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let name = python.libpython.file_name().ok_or_else(|| {
            PackageError::Invalid(format!("{} is not a file", python.libpython.display()))
        })?;
        std::fs::copy(&python.libpython, dir.join(name)).map_err(io(&python.libpython))?;
        written.push(lib.join(name));
        copy_tree(
            &python.stdlib,
            &dir.join(&python.stdlib_name),
            &mut written,
            &lib.join(&python.stdlib_name),
            STDLIB_SKIPPED,
        )?;
    }
    Ok(written)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), PackageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), PackageError> {
    Ok(())
}

/// Copies `from` into `to`, leaving out entries named in `skipped`; symlinks are followed
/// (the copy must stand on its own).
fn copy_tree(
    from: &Path,
    to: &Path,
    written: &mut Vec<PathBuf>,
    relative: &Path,
    skipped: &[&str],
) -> Result<(), PackageError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if skipped.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling symlink: nothing to ship
        };
        if meta.is_dir() {
            copy_tree(
                &path,
                &to.join(&name),
                written,
                &relative.join(&name),
                skipped,
            )?;
        } else if meta.is_file() {
            std::fs::copy(&path, to.join(&name)).map_err(io(&path))?;
            written.push(relative.join(&name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_host_json_is_valid() {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("host.json"))
            .unwrap();
        validate_host_json(&text).unwrap();
    }

    #[test]
    fn forwarding_inside_description_is_caught() {
        let text = r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"bifrost","arguments":["serve"],"enableForwardingHttpRequest":true}},"extensions":{"http":{"routePrefix":"api"}}}"#;
        assert!(
            validate_host_json(text)
                .unwrap_err()
                .contains("enableForwardingHttpRequest")
        );
    }
}
