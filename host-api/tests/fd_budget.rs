//! The descriptor budget follows the process's `RLIMIT_NOFILE` (its own test binary: the limit
//! is process-wide, and this changes it).

use famfs_host_api::fd_budget;

fn set_soft(soft: u64) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write one live local `rlimit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = soft.min(l.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
}

#[test]
fn the_budget_is_half_the_soft_limit_and_reservations_fit_in_it() {
    set_soft(200);
    assert_eq!(fd_budget::total(), 100);
    let a = fd_budget::reserve(60).unwrap();
    let e = fd_budget::reserve(50).unwrap_err();
    assert_eq!((e.asked, e.left, e.total), (50, 40, 100));
    let msg = e.to_string();
    assert!(msg.contains("max_open_datasets") && msg.contains("ulimit -n"), "{msg}");
    // Others' promises are kept when the limit is lowered below them: nothing new fits.
    set_soft(100);
    assert_eq!(fd_budget::unreserved(), 0);
    assert!(fd_budget::reserve(1).is_err());
    drop(a);
    let soft = fd_budget::raise_limit().unwrap();
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    assert_eq!(soft, l.rlim_max.min(1 << 20), "the soft limit is raised to the hard one");
    assert_eq!(fd_budget::total() as u64, soft / 2);
    assert_eq!(fd_budget::unreserved(), fd_budget::total());
}
