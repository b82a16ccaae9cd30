//! Builds the guests in `../guests` for wasm32-wasip1 (core modules) and wasm32-wasip2
//! (components), release, as wasmtime's test-programs crate does, and tells the tests where they
//! are (`GUESTS_DIR`, `GUESTS_P2_DIR`). Then the C guests (`guests/c/*/`): wit-bindgen's C
//! bindings generated from `wit/`, compiled with clang for wasm32-wasi against wasi-libc, into
//! `GUESTS_DIR` as `{name}-c.wasm`. Then the SQL guest, which has a workspace and target
//! directory of its own (`SQL_GUEST_DIR`, `SQL_NATIVE`).

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
        // The guests' .cargo/config.toml (simd128) is found from the working directory.
        let status = guest_cargo(&cargo, &guests)
            .args(["build", "--release", "--target", target, "--workspace", "--target-dir"])
            .arg(&target_dir)
            .status()
            .expect("run cargo to build the guests");
        assert!(status.success(), "building the guests in {} for {target} failed (see above)", guests.display());
        println!("cargo:rustc-env={env}={}", target_dir.join(target).join("release").display());
    }
    build_c_guests(&manifest.join("../wit"), &guests.join("c"), &target_dir.join("wasm32-wasip1/release"), &out);
    build_sql(&guests.join("sql"), &out, &cargo);
}

/// The SQL guest (`guests/sql`, its own workspace): `sql.wasm` and `sql_handler.wasm` for
/// wasm32-wasip1 (`SQL_GUEST_DIR`), and `sql-native`, the same engine on the host
/// (`SQL_NATIVE`, unoptimised). DataFusion is big, so it has a target directory of its own beside the host's
/// (`FAMFS_SQL_TARGET_DIR` overrides it), reused by every build.
fn build_sql(sql: &std::path::Path, out: &std::path::Path, cargo: &std::ffi::OsStr) {
    let target_dir = std::env::var_os("FAMFS_SQL_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.ancestors().nth(4).map_or_else(|| out.join("sql-target"), |t| t.join("sql-target")));
    let host = std::env::var("HOST").unwrap();
    // The guest optimised (it is what is tested); sql-native in the `native-test` profile
    // (unoptimised, a third of the build time; see guests/sql/Cargo.toml).
    let builds: [(&str, &str, &[&str]); 2] = [
        ("wasm32-wasip1", "release", &["--workspace", "--features", "famfs-sql/guest"]),
        (&host, "native-test", &["--bin", "sql-native", "--features", "native"]),
    ];
    for (target, profile, args) in builds {
        let status = guest_cargo(cargo, sql)
            .args(["build", "--profile", profile, "--target", target])
            .args(args)
            .arg("--target-dir")
            .arg(&target_dir)
            // zstd's C code (arrow-rs's IPC codec, which DataFusion turns on) built for wasm32
            // with Debian's clang and wasi-libc headers, as the C guests are.
            .env("CC_wasm32_wasip1", "clang-14")
            .env("AR_wasm32_wasip1", "llvm-ar-14")
            .env("CFLAGS_wasm32_wasip1", "-isystem /usr/include/wasm32-wasi")
            .status()
            .expect("run cargo to build the SQL guest");
        assert!(status.success(), "building the SQL guest in {} for {target} failed (see above)", sql.display());
    }
    println!("cargo:rustc-env=SQL_GUEST_DIR={}", target_dir.join("wasm32-wasip1/release").display());
    println!("cargo:rustc-env=SQL_NATIVE={}", target_dir.join(&host).join("native-test/sql-native").display());
}

/// `cargo` run in `dir` without the host build's flags and target settings, which are not the
/// guests'.
fn guest_cargo(cargo: &std::ffi::OsStr, dir: &std::path::Path) -> Command {
    let mut c = Command::new(cargo);
    c.current_dir(dir);
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"]
    {
        c.env_remove(var);
    }
    c
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
    // Each directory of guests/c is a guest; the files beside them are helpers they include.
    for entry in std::fs::read_dir(c_dir).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let source = dir.join(format!("{name}.c"));
        let wasm = dest.join(format!("{name}-c.wasm"));
        let status = Command::new(&clang)
            .args(["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-fuse-ld={}", wasm_ld.display()))
            .arg("-I")
            .arg(&bindings)
            .arg("-I")
            .arg(c_dir)
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
