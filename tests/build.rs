//! Builds the guests in `../guests` for wasm32-wasip1 (core modules) and wasm32-wasip2
//! (components), release, as wasmtime's test-programs crate does, and tells the tests where they
//! are (`GUESTS_DIR`, `GUESTS_P2_DIR`). Then the C guests (`guests/c/*/`): wit-bindgen's C
//! bindings generated from `wit/`, compiled with clang for wasm32-wasi against wasi-libc, into
//! `GUESTS_DIR` as `{name}-c.wasm`.

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
    build_c_guests(&manifest.join("../wit"), &guests.join("c"), &target_dir.join("wasm32-wasip1/release"), &out);
}

/// The first of `names` found on PATH.
fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n))).find(|p| p.is_file())
}

fn build_c_guests(wit: &std::path::Path, c_dir: &std::path::Path, dest: &std::path::Path, out: &std::path::Path) {
    use wit_bindgen_core::wit_parser::Resolve;
    // The bindings: analytics.h, analytics.c, analytics_component_type.o.
    let bindings = out.join("c-bindings");
    std::fs::create_dir_all(&bindings).unwrap();
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(wit).expect("parse wit/");
    let world = resolve.select_world(&[pkg], Some("analytics")).expect("world analytics");
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files).expect("C bindings");
    for (name, bytes) in files.iter() {
        std::fs::write(bindings.join(name), bytes).unwrap();
    }
    let missing = "the C guest needs Debian's clang-14, lld-14, wasi-libc and libclang-rt-14-dev-wasm32: run `bash scripts/test-deps.sh`";
    let clang = find_tool(&["clang-14", "clang"]).expect(missing);
    let wasm_ld = find_tool(&["wasm-ld-14", "wasm-ld"]).expect(missing);
    for entry in std::fs::read_dir(c_dir).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let source = dir.join(format!("{name}.c"));
        let wasm = dest.join(format!("{name}-c.wasm"));
        let status = Command::new(&clang)
            .args(["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-fuse-ld={}", wasm_ld.display()))
            .arg("-I")
            .arg(&bindings)
            .arg(&source)
            .arg(bindings.join("analytics.c"))
            .arg(bindings.join("analytics_component_type.o"))
            .arg("-o")
            .arg(&wasm)
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}; {missing}", clang.display()));
        assert!(status.success(), "compiling {} failed (see above); {missing}", source.display());
    }
}
