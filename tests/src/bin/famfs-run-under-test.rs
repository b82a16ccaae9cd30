//! The famfs-run command line, built inside the tests crate so that its tests can start it as
//! a process (`CARGO_BIN_EXE_famfs-run-under-test`).

fn main() {
    std::process::exit(famfs_runtime::cli::main());
}
