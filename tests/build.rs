//! Builds the guests in `../guests` for wasm32-wasip1 (core modules) and wasm32-wasip2
//! (components), release, as wasmtime's test-programs crate does, and tells the tests where they
//! are (`GUESTS_DIR`, `GUESTS_P2_DIR`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest.join("../guests");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // Beside the host's target dir, shared by every build of this crate, so guests build
    // incrementally.
    let target_dir = out.ancestors().nth(4).map_or_else(|| out.join("guests-target"), |t| t.join("guests-target"));
    // The whole guests workspace (its build output goes to the host's target dir, not there).
    println!("cargo:rerun-if-changed={}", guests.display());
    println!("cargo:rerun-if-changed={}", manifest.join("../wit").display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (target, env) in [("wasm32-wasip1", "GUESTS_DIR"), ("wasm32-wasip2", "GUESTS_P2_DIR")] {
        let status = Command::new(&cargo)
            // The guests' .cargo/config.toml (simd128) is found from the working directory.
            .current_dir(&guests)
            .args(["build", "--release", "--target", target, "--workspace", "--target-dir"])
            .arg(&target_dir)
            // The host build's flags are not the guests'.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("run cargo to build the guests");
        assert!(status.success(), "building the guests in {} for {target} failed (see above)", guests.display());
        println!("cargo:rustc-env={env}={}", target_dir.join(target).join("release").display());
    }
}
