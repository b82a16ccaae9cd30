//! Issue 21, item 4: one guest used to be able to take the descriptors of all. `max_open_datasets`
//! (1,024) was per guest but the process has one `RLIMIT_NOFILE`, and files opened with WASI in a
//! host directory had no cap at all. Now every guest reserves its caps (`max_open_datasets +
//! max_wasi_resources`) from half of the limit when it starts, a runtime whose concurrent guests'
//! caps do not fit is refused when built, and a guest past its WASI cap fails with its own error.
//!
//! Its own test binary: the limit is process-wide, and every test here runs under a hard limit of
//! [`LIMIT`] descriptors (so that nothing can raise it back), which leaves guests 300.

use famfs_run_tests::harness::{Spec, catalog_mount, program};
use famfs_run_tests::{Flavor, ImageFile, mount_with, pattern, scratch};
use famfs_runtime::{EmbedError, Limits, RunError, Runtime};
use std::sync::{Mutex, MutexGuard, Once};

const NAME: &str = "data/set.bin";
const LIMIT: u64 = 600;

/// Lowers this process's soft and hard `RLIMIT_NOFILE` to [`LIMIT`], once; the tests take turns
/// (each counts on the whole budget being its own).
fn low_limit() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let l = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
        // SAFETY: setrlimit reads one live local `rlimit`; lowering the limit needs no privilege.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) }, 0);
        assert_eq!(famfs_host_api::fd_budget::total(), 300);
    });
    turn
}

/// Four guests of the default caps (256 open datasets and 256 WASI resources each) would need
/// 2,048 descriptors of the 300 this process gives guests: building such a runtime is refused
/// with what to change. It used to be built, and its guests to starve each other and the host.
#[test]
fn a_runtime_whose_guests_caps_do_not_fit_is_refused() {
    let _turn = low_limit();
    let e = Runtime::builder().max_concurrency(4).build().err().expect("refused");
    assert!(
        matches!(e, EmbedError::Descriptors { concurrency: 4, per_guest: 512, needed: 2048, available: 300 }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("max_open_datasets") && msg.contains("ulimit -n"), "{msg}");
    // The default concurrency is sized to fit; with caps of 70 descriptors, four fit.
    let limits = Limits { max_open_datasets: 40, max_wasi_resources: 30, ..Limits::default() };
    Runtime::builder().limits(limits).max_concurrency(4).build().expect("4 × 70 fits in 300");
}

/// Guests whose caps fit run at once, each opening datasets up to its own cap and no further,
/// while the host keeps the other half of the limit: with the guests at their caps, this process
/// can still open 250 files. A guest whose caps do not fit beside them does not start, and says
/// why.
#[test]
fn concurrent_guests_stop_at_their_caps_and_leave_the_host_its_half() {
    let _turn = low_limit();
    let dir = scratch();
    let data = pattern(4096, 3);
    let mnt = mount_with(dir.path(), &[ImageFile { path: NAME, data: &data, strips: None }]);
    for flavor in Flavor::ALL {
        program("adversary", flavor);
        let limits = Limits { max_open_datasets: 40, max_wasi_resources: 30, ..Limits::default() };
        let guests: Vec<_> = (0..4)
            .map(|_| {
                let mnt = mnt.clone();
                std::thread::spawn(move || {
                    let mut spec = Spec::new(
                        "adversary",
                        flavor,
                        &["open-many", NAME, "100000", "1.5"],
                        catalog_mount(&mnt, &["/"]),
                    );
                    spec.limits = limits;
                    spec.run()
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let host: Vec<std::fs::File> =
            (0..250).map(|_| std::fs::File::open("/dev/null").expect("the host's half")).collect();
        let mut late = Spec::new("adversary", flavor, &["list"], catalog_mount(&mnt, &["/"]));
        late.limits = limits;
        let late = late.run();
        match &late.outcome.result {
            Err(RunError::Setup { message }) => assert!(message.contains("ulimit -n"), "{flavor:?}: {message}"),
            other => panic!("{flavor:?}: a fifth guest of 70 descriptors must not start beside four: {other:?}"),
        }
        drop(host);
        for g in guests {
            let run = g.join().unwrap();
            assert_eq!(run.ok(), "opened 40 no-address-space\nstill here\n", "{flavor:?}");
        }
    }
}

/// A guest opening files in a host directory (`--dir`) used to hold a descriptor for each, with
/// no cap, until the process had none left. It now stops at `max_wasi_resources`.
#[test]
fn a_guest_opening_wasi_files_stops_at_its_cap() {
    let _turn = low_limit();
    let dir = scratch();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    for flavor in Flavor::ALL {
        let mut spec =
            Spec::new("adversary", flavor, &["wasi-open-many", "/d/f", "100000"], famfs_host_api::Catalog::empty());
        spec.dirs = vec![("/d".into(), dir.path().to_path_buf())];
        spec.limits = Limits { max_open_datasets: 10, max_wasi_resources: 30, ..Limits::default() };
        let run = spec.run();
        match &run.outcome.result {
            Err(e @ RunError::WasiResources { limit: 30 }) => {
                assert!(e.to_string().contains("max_wasi_resources"), "{e}")
            }
            other => panic!("{flavor:?}: {other:?}\nstdout: {}\nstderr: {}", run.stdout, run.stderr),
        }
        // Its descriptors went back with it.
        let open: Vec<std::fs::File> = (0..250).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
        drop(open);
    }
}
