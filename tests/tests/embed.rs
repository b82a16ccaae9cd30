//! The embedding API as a platform uses it: one `Runtime`, concurrent async invocations, limits,
//! cancellation, the on-disk cache of compiled guests, manifests.

use famfs_run_tests::{Flavor, ImageFile, guest_for, image_with, native, scratch, text};
use famfs_runtime::{Cancel, Entry, Limits, Manifest, RunError, Runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn bytes(name: &str, flavor: Flavor) -> Vec<u8> {
    std::fs::read(guest_for(name, flavor)).unwrap()
}

/// Many handler invocations at once, with a concurrency limit of 3: every reply is right and
/// never more than 3 run at the same time.
#[test]
fn concurrent_handler_invocations() {
    let dir = scratch();
    let data = text(1 << 20, 3);
    let img = image_with(dir.path(), 32 << 20, &[ImageFile { path: "t.txt", data: &data, strips: None }]);
    let runtime = Runtime::builder().max_concurrency(3).build().unwrap();
    let program = runtime.load(&bytes("query", Flavor::Component), false).unwrap();
    // Loading the same bytes again is the same program.
    assert!(Arc::ptr_eq(&program, &runtime.load(&bytes("query", Flavor::Component), false).unwrap()));
    let want_lines = native::wc(&data).0 + u64::from(data.last() != Some(&b'\n'));
    let rt = tokio();
    let replies = rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (runtime, program) = (runtime.clone(), program.clone());
                let mut inv = runtime.invocation("query");
                let mut catalog = famfs_host_api::Catalog::open_device(&img).unwrap();
                catalog.grant("/").unwrap();
                inv.catalog = catalog;
                inv.entry = Entry::Handle { input: b"dataset=t.txt".to_vec() };
                tokio::spawn(async move {
                    let out = runtime.invoke(&program, inv).await;
                    assert!(runtime.available_slots() <= 3);
                    out
                })
            })
            .collect();
        let mut replies = Vec::new();
        for t in tasks {
            replies.push(t.await.unwrap());
        }
        replies
    });
    for out in replies {
        let reply = String::from_utf8(out.reply.expect("a reply")).unwrap();
        assert!(reply.contains(&format!("\"lines\":{want_lines}")), "{reply}");
    }
    assert_eq!(runtime.available_slots(), 3);
}

/// Dropping the invoke future interrupts the guest; an explicit Cancel does too; a timeout is
/// a timeout. The runtime keeps serving afterwards.
#[test]
fn cancellation_and_timeouts() {
    let runtime = Runtime::new().unwrap();
    let spin = runtime.load(&bytes("adversary", Flavor::Core), false).unwrap();
    let rt = tokio();
    rt.block_on(async {
        // Dropped after 200 ms: the blocking thread must come back (the slot is returned).
        let mut inv = runtime.invocation("adversary");
        inv.args = vec!["spin".into()];
        let slots = runtime.available_slots();
        let t = Instant::now();
        assert!(tokio::time::timeout(Duration::from_millis(200), runtime.invoke(&spin, inv)).await.is_err());
        while runtime.available_slots() < slots {
            assert!(t.elapsed() < Duration::from_secs(10), "the cancelled guest kept running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // An explicit cancel from another task.
        let cancel = Cancel::new();
        let mut inv = runtime.invocation("adversary");
        inv.args = vec!["spin".into()];
        inv.cancel = Some(cancel.clone());
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let out = runtime.invoke(&spin, inv).await;
        assert!(matches!(out.result, Err(RunError::Cancelled)), "{:?}", out.result);
        // A timeout.
        let mut inv = runtime.invocation("adversary");
        inv.args = vec!["spin".into()];
        inv.limits = Limits { timeout: Some(Duration::from_millis(150)), ..Limits::default() };
        let out = runtime.invoke(&spin, inv).await;
        assert!(matches!(out.result, Err(RunError::Timeout { limit_ms: 150 })), "{:?}", out.result);
        // Still serving.
        let mut inv = runtime.invocation("adversary");
        inv.args = vec!["list".into()];
        assert_eq!(runtime.invoke(&spin, inv).await.result.unwrap(), 0);
    });
}

/// Compiled guests are kept on disk: a second runtime takes them from there; a damaged or
/// foreign entry is recompiled, never run.
#[test]
fn disk_cache_of_compiled_guests() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    let wc = bytes("wc", Flavor::Component);
    let run_wc = |runtime: &Runtime| {
        let program = runtime.load(&wc, false).unwrap();
        let out = program.run(runtime.engine(), runtime.invocation("wc"));
        // No arguments: wc prints its usage and fails (a component exits 1); it ran.
        assert_eq!(out.result.unwrap(), 1);
    };
    run_wc(&Runtime::builder().cache_dir(&cache).build().unwrap());
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some()).collect()
    };
    let files = entries();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&famfs_runtime::cache::sha256_hex(&wc)), "{name}");
    let good = std::fs::read(&files[0]).unwrap();
    // Taken from the cache: the entry is read, not written again (same inode).
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&files[0]);
    run_wc(&Runtime::builder().cache_dir(&cache).build().unwrap());
    assert_eq!(inode(&files[0]), before, "a cache hit does not rewrite the entry");
    // Damaged entries: discarded, recompiled, rewritten. A byte flipped in a sampled page
    // (the first 64 KiB), a byte cut off the end (the length), an entry in the first format
    // (a checksum in front), the trailer alone.
    let mut flipped = good.clone();
    flipped[100] ^= 0xff;
    let mut first_format = b"FAMFSRC1".to_vec();
    first_format.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&good[..good.len() - 48]));
    first_format.extend_from_slice(&good[..good.len() - 48]);
    let damaged = [
        ("a flipped byte", flipped),
        ("a truncated entry", good[..good.len() - 1].to_vec()),
        ("the first format", first_format),
        ("the trailer alone", good[good.len() - 48..].to_vec()),
    ];
    for (what, bad) in damaged {
        std::fs::write(&files[0], &bad).unwrap();
        run_wc(&Runtime::builder().cache_dir(&cache).build().unwrap());
        let now = std::fs::read(&files[0]).unwrap();
        assert_eq!(now.len(), good.len(), "{what}: rewritten");
        assert_ne!(now, bad, "{what}");
    }
    // A foreign entry with a valid trailer (not a wasmtime artifact): wasmtime refuses it. (An
    // artifact under 128 KiB is sampled whole: the digest covers its length and all of it.)
    let junk = b"not machine code".to_vec();
    let mut forged = junk.clone();
    forged.extend_from_slice(b"FAMFSRC2");
    forged.extend_from_slice(&(junk.len() as u64).to_le_bytes());
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, (junk.len() as u64).to_le_bytes());
    sha2::Digest::update(&mut h, &junk);
    forged.extend_from_slice(&sha2::Digest::finalize(h));
    std::fs::write(&files[0], &forged).unwrap();
    run_wc(&Runtime::builder().cache_dir(&cache).build().unwrap());
    assert_ne!(std::fs::read(&files[0]).unwrap(), forged, "recompiled and rewritten");
    // A cache directory others can write is refused.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let e = Runtime::builder().cache_dir(&open).build().err().expect("refused");
    assert!(e.to_string().contains("writable by group or others"), "{e}");
}

/// `bytes` with a custom section appended so that the whole is exactly `len` bytes long (a
/// valid module still, running as before).
fn padded_to(bytes: &[u8], len: usize) -> Vec<u8> {
    let leb = |mut n: usize| {
        let mut v = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            v.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                return v;
            }
        }
    };
    // Section: id 0, size, name "pad" (length 3), payload. Try payload sizes until it fits.
    for payload in 0..len {
        let body = 1 + 3 + payload;
        let total = bytes.len() + 1 + leb(body).len() + body;
        if total == len {
            let mut v = bytes.to_vec();
            v.push(0);
            v.extend(leb(body));
            v.push(3);
            v.extend_from_slice(b"pad");
            v.resize(len, 0);
            return v;
        }
    }
    panic!("cannot pad {} bytes to {len}", bytes.len());
}

/// A warm load neither reads the module nor compiles it (issue 22): the file's identity gives
/// its sha256 and the cache its compiled code. A file changed since, even to other bytes of
/// the same size, is read and hashed again; a file changed too recently to tell is never
/// remembered; a wrong expected sha256 is refused warm as cold.
#[test]
fn warm_loads_read_nothing_but_notice_every_change() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    let (wc, adversary) = (bytes("wc", Flavor::Core), bytes("adversary", Flavor::Core));
    let len = wc.len().max(adversary.len()) + 64;
    let (wc, adversary) = (padded_to(&wc, len), padded_to(&adversary, len));
    let module = dir.path().join("guest.wasm");
    let usage_of = |rt: &Runtime| {
        let program = rt.load_file(&module, None, false).unwrap();
        let out = program.run(rt.engine(), rt.invocation("guest"));
        let stderr = String::from_utf8(out.stderr.unwrap_or_default()).unwrap();
        stderr.split_whitespace().nth(1).unwrap_or_default().to_string()
    };
    let runtime = || Runtime::builder().cache_dir(&cache).build().unwrap();
    let stats = |read, compiled, disk, memory| famfs_runtime::LoadStats {
        modules_read: read,
        compiled,
        from_disk_cache: disk,
        from_memory: memory,
    };

    // Just written: its identity is racy, so it is read every time and never remembered.
    std::fs::write(&module, &wc).unwrap();
    let rt = runtime();
    assert_eq!(usage_of(&rt), "wc");
    assert_eq!(rt.load_stats(), stats(1, 1, 0, 0));
    let rt = runtime();
    assert_eq!(usage_of(&rt), "wc");
    assert_eq!(rt.load_stats(), stats(1, 0, 1, 0), "a racy identity is not trusted");

    // Older than the racy window: remembered on the next read, then trusted.
    std::thread::sleep(famfs_runtime::cache::RACY + Duration::from_millis(100));
    let rt = runtime();
    assert_eq!(usage_of(&rt), "wc");
    assert_eq!(rt.load_stats(), stats(1, 0, 1, 0));
    let warm = runtime();
    assert_eq!(usage_of(&warm), "wc");
    assert_eq!(warm.load_stats(), stats(0, 0, 1, 0), "warm: neither read nor compiled");
    assert_eq!(usage_of(&warm), "wc");
    assert_eq!(warm.load_stats(), stats(0, 0, 1, 1), "then from memory");
    // A wrong expected sha256 is refused without reading, a right one accepted.
    let sha = famfs_runtime::cache::sha256_hex(&wc);
    assert!(matches!(
        warm.load_file(&module, Some(&"0".repeat(64)), false),
        Err(famfs_runtime::EmbedError::Sha256Mismatch { .. })
    ));
    warm.load_file(&module, Some(&sha), false).unwrap();
    assert_eq!(warm.load_stats().modules_read, 0);

    // Rewritten in place with other bytes of the same size, its modification time set back (as
    // `touch -d`, rsync or tar do): only the change time moved, which no user can set, so both
    // the warm runtime (its memory) and a new one (the cache directory) read it again.
    let mtime = std::fs::metadata(&module).unwrap().modified().unwrap();
    std::fs::write(&module, &adversary).unwrap();
    std::fs::File::options().write(true).open(&module).unwrap().set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(&module).unwrap().modified().unwrap(), mtime);
    assert_eq!(usage_of(&warm), "adversary", "the warm runtime noticed the change");
    assert_eq!(warm.load_stats().modules_read, 1);
    let rt = runtime();
    assert_eq!(usage_of(&rt), "adversary", "a new runtime noticed the change");
    assert_eq!(rt.load_stats().modules_read, 1);
}

/// A manifest drives a load and an invocation; a wrong sha256 is refused.
#[test]
fn manifests_in_the_library() {
    let dir = scratch();
    let data = text(300_000, 4);
    image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a.log", data: &data, strips: None }]);
    let query = guest_for("query", Flavor::Core);
    let sha = famfs_runtime::cache::sha256_hex(&std::fs::read(&query).unwrap());
    let text = format!(
        "[module]\npath = {:?}\nsha256 = \"{sha}\"\ninvoke = \"handle\"\n[source]\ndevice = \"data.img\"\ndatasets = [\"logs\"]\n[limits]\ntimeout = \"20s\"\n[config]\nmode = \"x\"\n",
        query.to_str().unwrap()
    );
    let path = dir.path().join("fn.toml");
    std::fs::write(&path, &text).unwrap();
    let m = Manifest::from_file(&path).unwrap();
    let runtime = Runtime::new().unwrap();
    let program = m.load(&runtime).unwrap();
    assert_eq!(program.kind(), famfs_runtime::ProgramKind::AdaptedModule);
    let inv = m.invocation(runtime.limits(), b"dataset=logs/a.log\ncontains=needle".to_vec()).unwrap();
    assert!(inv.env.contains(&("FAMFS_CONFIG_MODE".into(), "x".into())));
    let out = tokio().block_on(runtime.invoke(&program, inv));
    let reply = String::from_utf8(out.reply.expect("reply")).unwrap();
    assert!(reply.contains(&format!("\"matching_lines\":{}", native::grep(&data, b"needle"))), "{reply}");
    // Not granted: the handler's error says so.
    let inv = m.invocation(runtime.limits(), b"dataset=other".to_vec()).unwrap();
    let out = tokio().block_on(runtime.invoke(&program, inv));
    assert!(matches!(&out.result, Err(RunError::Handler { message }) if message.contains("other")), "{:?}", out.result);
    // A wrong sha256.
    std::fs::write(&path, text.replace(&sha, &"0".repeat(64))).unwrap();
    let e = Manifest::from_file(&path).unwrap().load(&runtime).err().expect("refused");
    assert!(e.to_string().contains("refusing to run it"), "{e}");
}

/// sum-handler, a handler built as a library (a reactor module for wasm32-wasip1, a component
/// exporting only `handle` for wasm32-wasip2): zero-copy and copied-in input give the same sum.
#[test]
fn sum_handler_in_every_build() {
    let dir = scratch();
    let data = famfs_run_tests::pattern((3 << 20) + 5, 8);
    let img = image_with(dir.path(), 32 << 20, &[ImageFile { path: "d.bin", data: &data, strips: None }]);
    let mut padded = data.clone();
    padded.resize(data.len().next_multiple_of(8), 0);
    let want: u64 = padded.chunks(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).fold(0, u64::wrapping_add);
    let runtime = Runtime::new().unwrap();
    let rt = tokio();
    for flavor in [Flavor::Component, Flavor::Adapted] {
        let program = runtime.load(&bytes("sum_handler", flavor), flavor == Flavor::Adapted).unwrap();
        for input in [b"map:d.bin".to_vec(), data.clone()] {
            let mut inv = runtime.invocation("sum-handler");
            let mut catalog = famfs_host_api::Catalog::open_device(&img).unwrap();
            catalog.grant("/").unwrap();
            inv.catalog = catalog;
            inv.entry = Entry::Handle { input };
            let out = rt.block_on(runtime.invoke(&program, inv));
            assert_eq!(String::from_utf8(out.reply.expect("a reply")).unwrap(), want.to_string(), "{flavor:?}");
        }
    }
}

/// Issue 21, item 10: the default `Runtime` asked for 4 invocations per CPU whatever the
/// limits, so on a machine with more than 16 CPUs 4 × CPUs × 256 guard slots exceeded the
/// process's 16,384 and `Runtime::new()` failed. The default is now derived from the limits:
/// pretended machines of 64 and 256 CPUs get a runtime whose guests' caps fit the process.
#[test]
fn default_runtimes_fit_the_process_on_machines_with_many_cpus() {
    let limits = Limits::default();
    for cpus in [1, 2, 64, 256] {
        let n = famfs_runtime::default_concurrency(cpus, &limits);
        assert!(n >= 1 && n <= cpus * 4, "{cpus} CPUs: {n}");
        assert!(n * limits.max_mappings <= famfs_host_api::guard::CAPACITY, "{cpus} CPUs: {n} × guard slots");
        assert!(
            n * limits.max_kernel_mappings <= famfs_host_api::map_budget::total(),
            "{cpus} CPUs: {n} × kernel mappings"
        );
        let runtime = Runtime::builder().cpus(cpus).build().unwrap_or_else(|e| panic!("{cpus} CPUs: {e}"));
        assert_eq!(runtime.available_slots(), n, "{cpus} CPUs");
        println!("{cpus} CPUs: {n} guests at once by default");
    }
    // Explicitly more than fits is still refused, naming what to lower.
    let e = Runtime::builder().max_concurrency(100_000).build().err().expect("100,000 guests cannot fit");
    assert!(e.to_string().contains("lower max_concurrency"), "{e}");
}
