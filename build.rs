//! Link-time setup of the embedded CPython.
//!
//! The binary's rpath names `$ORIGIN/python/lib` first — the Python a package carries beside
//! the binary (`bifrost package --with-python`) — and then the libpython the build used, so a
//! development build finds its Python and a package runs on a host without one. Without an rpath
//! the loader would silently take whatever system libpython has the same soname.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/python/lib");
    pyo3_build_config::add_libpython_rpath_link_args();
}
