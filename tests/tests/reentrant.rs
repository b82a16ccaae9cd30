//! Issue 21, item 3: host memory a guest makes the host hold must be bounded. A core module's
//! `cabi_realloc` is guest code that the host calls while it lowers a result; one that called
//! `list` again from there made the host hold one more listing per level, as deep as the guest
//! liked, none of it counted toward the guest's memory limit (1.7 GB of RSS under a 64 MiB
//! limit in the review). The canonical ABI forbids calling an import while the host lowers a
//! result (components trap on it in wasmtime: `may_leave`); the core-module host now traps too.
//!
//! The guest is built here with wasm-encoder, as no toolchain's `cabi_realloc` calls imports:
//!
//! ```wat
//! (module
//!   (import "famfs:dataset/catalog@0.1.0" "list" (func $list (param i32)))
//!   (memory (export "memory") 16)
//!   (global $depth (mut i32) (i32.const 0))
//!   (global $bump (mut i32) (i32.const 65536))
//!   (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
//!     (if (i32.lt_u (global.get $depth) (i32.const 100))
//!       (then (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
//!             (call $list (i32.const 8))))
//!     (local.set $p (i32.and (i32.sub (i32.add (global.get $bump) (local.get 2)) (i32.const 1))
//!                            (i32.sub (i32.const 0) (local.get 2))))
//!     (global.set $bump (i32.add (local.get $p) (local.get 3)))
//!     (local.get $p))
//!   (func (export "_start") (call $list (i32.const 8))))
//! ```

use famfs_run_tests::{ImageFile, image_with, scratch, text};
use serde_json::Value;
use wasm_encoder::{
    CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, ImportSection, Instruction as I, MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// The module of the doc comment above.
fn reentering_guest() -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], []);
    types.ty().function([ValType::I32; 4], [ValType::I32]);
    types.ty().function([], []);
    let mut imports = ImportSection::new();
    imports.import("famfs:dataset/catalog@0.1.0", "list", EntityType::Function(0));
    let mut funcs = FunctionSection::new();
    funcs.function(1).function(2);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 16, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut globals = GlobalSection::new();
    let var = GlobalType { val_type: ValType::I32, mutable: true, shared: false };
    globals.global(var, &ConstExpr::i32_const(0)).global(var, &ConstExpr::i32_const(65536));
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0).export("cabi_realloc", ExportKind::Func, 1).export(
        "_start",
        ExportKind::Func,
        2,
    );
    let mut realloc = Function::new([(1, ValType::I32)]);
    for i in [
        I::GlobalGet(0),
        I::I32Const(100),
        I::I32LtU,
        I::If(wasm_encoder::BlockType::Empty),
        I::GlobalGet(0),
        I::I32Const(1),
        I::I32Add,
        I::GlobalSet(0),
        I::I32Const(8),
        I::Call(0),
        I::End,
        I::GlobalGet(1),
        I::LocalGet(2),
        I::I32Add,
        I::I32Const(1),
        I::I32Sub,
        I::I32Const(0),
        I::LocalGet(2),
        I::I32Sub,
        I::I32And,
        I::LocalSet(4),
        I::LocalGet(4),
        I::LocalGet(3),
        I::I32Add,
        I::GlobalSet(1),
        I::LocalGet(4),
        I::End,
    ] {
        realloc.instruction(&i);
    }
    let mut start = Function::new([]);
    start.instruction(&I::I32Const(8)).instruction(&I::Call(0)).instruction(&I::End);
    let mut code = CodeSection::new();
    code.function(&realloc).function(&start);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code);
    module.finish()
}

#[test]
fn a_host_call_from_cabi_realloc_traps() {
    let dir = scratch();
    let files: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("data/file-{i:02}.txt"), text(1000, i))).collect();
    let images: Vec<ImageFile<'_>> =
        files.iter().map(|(p, d)| ImageFile { path: p.as_str(), data: d.as_slice(), strips: None }).collect();
    let img = image_with(dir.path(), 64 << 20, &images);
    let guest = dir.path().join("reenter.wasm");
    std::fs::write(&guest, reentering_guest()).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"))
        .arg("--json")
        .arg("-d")
        .arg(&img)
        .args(["--dataset", "/"])
        .arg(&guest)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(v["result"]["error"]["kind"], "trap", "nested list calls were served: {v}");
    let message = v["result"]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("called from cabi_realloc"), "{message}");
    assert_eq!(o.status.code(), Some(125), "{v}");
}
