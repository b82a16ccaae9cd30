//! `famfs-run`: run a WebAssembly guest in a sandbox over famfs datasets.

fn main() {
    std::process::exit(famfs_runtime::cli::main());
}
