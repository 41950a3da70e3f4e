//! Build script of the engine crate: links libpython with an rpath, so the engine's tests and
//! benches load the libpython pyo3 was configured for rather than whatever the system has.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
