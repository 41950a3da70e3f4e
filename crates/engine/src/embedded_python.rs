//! Where the embedded CPython lives: the one the binary was built against, or the copy a
//! package carries next to the binary (`bifrost package --with-python`).
//!
//! A package is laid out as `<dir>/bifrost` and `<dir>/python/lib/` (the shared libpython and
//! `python3.X/`, the standard library). The binary's rpath names `$ORIGIN/python/lib` first
//! (`build.rs`), so the dynamic loader takes the package's libpython when there is one; and
//! [`use_packaged_python`] points `PYTHONHOME` at `<dir>/python` before the interpreter starts,
//! so it finds its standard library there instead of at the build machine's prefix. A host with
//! no Python at all (the Functions images do not promise one) runs the package as it is.
#![allow(unsafe_code)] // One `set_var` before any thread exists (see `use_packaged_python`).

use std::path::{Path, PathBuf};

use pyo3::prelude::*;

use crate::error::EngineError;

/// The folder, relative to the binary, of a package's own Python.
pub const PACKAGED_PYTHON_DIR: &str = "python";

/// The Python this binary runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonLayout {
    /// The shared library the process loaded.
    pub libpython: PathBuf,
    /// The standard library folder (`.../lib/python3.X`).
    pub stdlib: PathBuf,
    /// `python3.X`, the folder name the interpreter looks for under `PYTHONHOME/lib`.
    pub stdlib_name: String,
}

/// Points `PYTHONHOME` at the Python a package carries beside this executable, if it carries
/// one. Call first thing in `main`, before any thread exists.
pub fn use_packaged_python() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let home = exe.parent()?.join(PACKAGED_PYTHON_DIR);
    let lib = home.join("lib");
    let has_stdlib = std::fs::read_dir(&lib).ok()?.flatten().any(|entry| {
        entry.file_name().to_string_lossy().starts_with("python3")
            && entry.path().join("os.py").is_file()
    });
    if !has_stdlib {
        return None;
    }
    // SAFETY: called at the start of `main`, before the program starts any thread, so nothing
    // reads the environment concurrently (the documented contract of this function).
    unsafe {
        std::env::set_var("PYTHONHOME", &home);
    }
    Some(home)
}

/// The libpython this process loaded and the standard library of that interpreter (starts the
/// interpreter to ask it; for tools such as `bifrost package`, not for a serving process).
pub fn python_layout() -> Result<PythonLayout, EngineError> {
    let libpython = loaded_libpython().ok_or_else(|| {
        EngineError::PythonInit("this process has no libpython mapped (/proc/self/maps)".into())
    })?;
    Python::initialize();
    let (stdlib, version): (String, (u8, u8)) = Python::attach(|py| -> PyResult<_> {
        let sysconfig = py.import("sysconfig")?;
        let paths = sysconfig.call_method0("get_paths")?;
        let stdlib: String = paths.get_item("stdlib")?.extract()?;
        let info = py.import("sys")?.getattr("version_info")?;
        Ok((
            stdlib,
            (info.get_item(0)?.extract()?, info.get_item(1)?.extract()?),
        ))
    })
    .map_err(|e| EngineError::PythonInit(e.to_string()))?;
    Ok(PythonLayout {
        libpython,
        stdlib: PathBuf::from(stdlib),
        stdlib_name: format!("python{}.{}", version.0, version.1),
    })
}

/// The path of the libpython shared library mapped into this process.
pub fn loaded_libpython() -> Option<PathBuf> {
    libpython_in_maps(&std::fs::read_to_string("/proc/self/maps").ok()?)
}

/// The first `libpython*.so*` path in a `/proc/<pid>/maps` text.
pub fn libpython_in_maps(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            Path::new(path)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libpython"))
        })
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpython_is_found_in_a_maps_listing() {
        let maps = "7f00-7f01 r--p 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    7f02-7f03 r-xp 00000000 08:01 2 /opt/app/python/lib/libpython3.11.so.1.0\n";
        assert_eq!(
            libpython_in_maps(maps),
            Some(PathBuf::from("/opt/app/python/lib/libpython3.11.so.1.0"))
        );
        assert_eq!(libpython_in_maps("7f00-7f01 r--p 0 0 0 [heap]\n"), None);
    }
}
