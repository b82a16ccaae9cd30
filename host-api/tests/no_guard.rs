//! The guard is installed in one place, where the runtime makes its engines; a mapper made
//! before that would leave its mappings' faults unguarded, so it refuses to start (its own test
//! binary: nothing here has installed the guard).

use famfs_host_api::mapper::{MapLimits, Mapper, MapperError};

#[test]
fn a_mapper_needs_the_guard_installed() {
    assert!(!famfs_host_api::guard::installed());
    let e = Mapper::new(MapLimits::default()).err().expect("refused");
    assert!(matches!(e, MapperError::NoGuard), "{e}");
    assert!(e.to_string().contains("guard::install()"), "{e}");
    famfs_host_api::guard::install();
    assert!(famfs_host_api::guard::installed());
    Mapper::new(MapLimits::default()).expect("with the guard installed");
}
