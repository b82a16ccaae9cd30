//! A media error stops the guest at once (issue 11, defect 3). When a mapped file shrinks under
//! a guest, the SIGBUS guard puts zero pages in place of the lost ones; the guest used to go on
//! computing with those zeros and report only when it returned (never, for a guest that does
//! not return and has no time limit). It is now stopped within an epoch tick of the fault, and
//! the invocation fails with a media error naming the dataset and the offset.

use famfs_run_tests::harness::{self, Spec, catalog_mount, program};
use famfs_run_tests::{Flavor, ImageFile, mount_with, pattern, scratch};
use famfs_runtime::RunError;
use std::time::{Duration, Instant};

const NAME: &str = "data/shrinks.bin";
const SIZE: usize = 8 << 20;

#[test]
fn a_guest_that_never_returns_is_stopped_by_a_media_error() {
    for (flavor, technique) in harness::TECHNIQUES.into_iter().flat_map(|t| Flavor::ALL.map(|f| (f, t))) {
        let dir = scratch();
        let data = pattern(SIZE, 3);
        let mnt = mount_with(dir.path(), &[ImageFile { path: NAME, data: &data, strips: None }]);
        program("adversary", flavor);
        // No time limit: only the media error can end it.
        let mut spec = Spec::new("adversary", flavor, &["spin-read", NAME], catalog_mount(&mnt, &["/"]));
        spec.limits.map_technique = technique;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(spec.run());
        });
        // Let it map the file and sum it a few times over, then cut the file to 1 MiB.
        std::thread::sleep(Duration::from_millis(800));
        let cut = Instant::now();
        std::fs::OpenOptions::new().write(true).open(mnt.join(NAME)).unwrap().set_len(1 << 20).unwrap();
        let run = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{flavor:?}: the guest still ran 30 s after its dataset shrank under it"));
        let stopped = cut.elapsed();
        match &run.outcome.result {
            Err(RunError::Media(e)) => {
                assert_eq!(e.dataset, NAME, "{flavor:?}");
                assert!((1 << 20..SIZE as u64).contains(&e.offset), "{flavor:?}: offset {}", e.offset);
                let message = run.outcome.result.as_ref().unwrap_err().to_string();
                assert!(
                    message.contains(&format!("media error in dataset {NAME} at offset {}", e.offset)),
                    "{message}"
                );
            }
            other => panic!("{flavor:?}: expected a media error, got {other:?}; stderr {}", run.stderr),
        }
        assert!(run.stdout.starts_with("ready "), "{flavor:?}: {}", run.stdout);
        println!("{flavor:?}, {technique:?}: stopped {} ms after the file was cut", stopped.as_millis());
        // An epoch tick is 10 ms; allow for a loaded CI machine.
        assert!(stopped < Duration::from_secs(5), "{flavor:?}: stopped only after {stopped:?}");
    }
}
