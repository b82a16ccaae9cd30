//! Devices named by what they hold (`tag:UUID`, `uuid:UUID`), found among image files in a
//! directory (as `FAMFS_DEVICE_PATH` lists them) and dax character devices with a sysfs tag.

mod common;

use common::*;
use famfs::locate::{DeviceSpec, LocateError, Locator};
use famfs::{Access, Device, read_superblock};
use std::path::{Path, PathBuf};

fn uuids(img: &Path) -> (uuid::Uuid, uuid::Uuid) {
    let sb = read_superblock(&Device::open(img, Access::ReadOnly).unwrap()).unwrap();
    (sb.dev_uuid, sb.fs_uuid)
}

fn locator(dirs: &[&Path], sysfs: &Path) -> Locator {
    Locator { dax_dirs: Vec::new(), extra_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(), sysfs: sysfs.into() }
}

#[test]
fn specs_parse() {
    let u = "0c0d9a7e-9c5e-4e1f-9d7a-3b2a1c0f8e6d";
    assert_eq!(DeviceSpec::parse(&format!("tag:{u}")).unwrap(), DeviceSpec::Tag(u.parse().unwrap()));
    assert_eq!(DeviceSpec::parse(&format!("uuid:{u}")).unwrap(), DeviceSpec::FsUuid(u.parse().unwrap()));
    assert_eq!(DeviceSpec::parse("/dev/dax0.0").unwrap(), DeviceSpec::Path("/dev/dax0.0".into()));
    let e = DeviceSpec::parse("tag:nope").unwrap_err().to_string();
    assert!(e.contains("is not tag:UUID or uuid:UUID"), "{e}");
}

#[test]
fn images_are_found_by_device_tag_and_file_system_uuid() {
    let dir = scratch();
    let devices = dir.path().join("devices");
    std::fs::create_dir(&devices).unwrap();
    let a = new_image(&devices, "a.img", 16 << 20);
    let b = new_image(&devices, "b.img", 16 << 20);
    std::fs::write(devices.join("not-famfs.bin"), vec![0u8; 4096]).unwrap();
    let (a_tag, a_fs) = uuids(&a);
    let (b_tag, b_fs) = uuids(&b);
    assert!(a_tag != b_tag && a_fs != b_fs);
    let l = locator(&[&devices], dir.path());
    assert_eq!(l.resolve(&format!("tag:{a_tag}")).unwrap(), a);
    assert_eq!(l.resolve(&format!("uuid:{b_fs}")).unwrap(), b);
    assert_eq!(l.resolve(&format!("tag:{b_tag}")).unwrap(), b);
    // A path is a path.
    assert_eq!(l.resolve("x/y.img").unwrap(), PathBuf::from("x/y.img"));
    // Nothing: the error lists what was searched and found.
    let missing = uuid::Uuid::new_v4();
    match l.resolve(&format!("uuid:{missing}")) {
        Err(e @ LocateError::NotFound { .. }) => {
            let m = e.to_string();
            assert!(m.contains(&missing.to_string()) && m.contains(&devices.display().to_string()), "{m}");
            assert!(m.contains(&format!("device {a_tag} file system {a_fs}")), "{m}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Two devices with one tag (an image copied): ambiguous, and both named.
    std::fs::copy(&a, devices.join("a-copy.img")).unwrap();
    match l.resolve(&format!("tag:{a_tag}")) {
        Err(e @ LocateError::Ambiguous { .. }) => {
            let m = e.to_string();
            assert!(m.contains("a.img") && m.contains("a-copy.img"), "{m}");
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
}

/// Issue 21, item 6: any file in a searched directory was a candidate, so an image another user
/// planted there (or one anyone may rewrite) with the same tag made every lookup ambiguous, or
/// was the device found, which famfsctl would then write to. Only files of the caller's or
/// root's that others cannot write are candidates now; the rest are skipped and named.
#[test]
fn untrusted_candidates_are_skipped_and_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let devices = dir.path().join("devices");
    std::fs::create_dir(&devices).unwrap();
    let a = new_image(&devices, "a.img", 16 << 20);
    let (a_tag, _) = uuids(&a);
    let l = locator(&[&devices], dir.path());
    // A copy anyone may rewrite.
    let open = devices.join("anyone-writes.img");
    std::fs::copy(&a, &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of another user's (only root can make one here).
    let root = rustix::process::geteuid().is_root();
    let foreign = devices.join("someone-elses.img");
    if root {
        std::fs::copy(&a, &foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    }
    assert_eq!(l.resolve(&format!("tag:{a_tag}")).unwrap(), a, "the untrusted copies made the lookup ambiguous");
    // Not found: the error says what was skipped and why.
    let m = l.resolve(&format!("uuid:{}", uuid::Uuid::new_v4())).unwrap_err().to_string();
    assert!(m.contains("anyone-writes.img (writable by every user)"), "{m}");
    if root {
        assert!(m.contains("someone-elses.img (owned by uid 65534)"), "{m}");
    }
    // Two trusted copies are still ambiguous: both named, the skipped ones too.
    std::fs::copy(&a, devices.join("a-copy.img")).unwrap();
    let m = l.resolve(&format!("tag:{a_tag}")).unwrap_err().to_string();
    assert!(m.contains("/a.img") && m.contains("/a-copy.img") && m.contains("anyone-writes.img (writable"), "{m}");
}

/// `Device::open` (so every tool: famfsctl, famfs-run, manifests) takes the same names, looking
/// in `FAMFS_DEVICE_PATH`.
#[test]
fn famfsctl_finds_a_device_by_tag_in_famfs_device_path() {
    let dir = scratch();
    let devices = dir.path().join("devices");
    std::fs::create_dir(&devices).unwrap();
    let img = new_image(&devices, "fs.img", 16 << 20);
    let (tag, fs) = uuids(&img);
    for spec in [format!("tag:{tag}"), format!("uuid:{fs}")] {
        let out = famfsctl().env("FAMFS_DEVICE_PATH", &devices).args(["-d", &spec, "ls", "/"]).output().unwrap();
        assert!(out.status.success(), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = famfsctl()
        .env("FAMFS_DEVICE_PATH", &devices)
        .args(["-d", "uuid:00000000-0000-0000-0000-000000000001", "ls", "/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no famfs device has file-system UUID") && err.contains("FAMFS_DEVICE_PATH"), "{err}");
}

/// A fake sysfs laid out as Linux lays it out for device-dax `dax9.0`, number 1:3: the device
/// directory under `devices/`, `bus/dax/devices/dax9.0` and `dev/char/1:3` linking to it.
/// Returns the device directory.
fn kernel_sysfs(sysfs: &Path) -> PathBuf {
    let device = sysfs.join("devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/dax0.0/dax9.0");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::create_dir_all(sysfs.join("bus/dax/devices")).unwrap();
    std::fs::create_dir_all(sysfs.join("dev/char")).unwrap();
    let rel = "../../../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/dax0.0/dax9.0";
    std::os::unix::fs::symlink(rel, sysfs.join("bus/dax/devices/dax9.0")).unwrap();
    std::os::unix::fs::symlink(&rel[3..], sysfs.join("dev/char/1:3")).unwrap();
    device
}

/// A dax character device whose sysfs tag carries the tag (a dynamic-capacity allocation), in a
/// sysfs tree laid out as the kernel does: found by the proposed `bus/dax/devices/daxX.Y/uuid`
/// first, by the older `dev/char/MAJ:MIN/tag` when that is all there is, even with no famfs on
/// the device yet; an all-zero UUID tags nothing.
#[test]
fn a_dax_device_is_found_by_its_sysfs_tag() {
    let dir = scratch();
    let dev = dir.path().join("dev");
    std::fs::create_dir(&dev).unwrap();
    let node = dev.join("dax9.0");
    // A character device node (1:3, as /dev/null's), which needs CAP_MKNOD.
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    );
    if let Err(e) = made {
        // Without CAP_MKNOD the node cannot exist; say so rather than pass silently.
        eprintln!("a_dax_device_is_found_by_its_sysfs_tag: cannot make a device node here ({e}); not run");
        assert_eq!(e, rustix::io::Errno::PERM, "mknod failed for another reason");
        return;
    }
    let sysfs = dir.path().join("sys");
    let device = kernel_sysfs(&sysfs);
    let l = Locator { dax_dirs: vec![dev.clone()], extra_dirs: Vec::new(), sysfs };
    // The older attribute alone.
    let old = uuid::Uuid::new_v4();
    std::fs::write(device.join("tag"), format!("{old}\n")).unwrap();
    assert_eq!(l.resolve(&format!("tag:{old}")).unwrap(), node);
    // The proposed one wins where both are there.
    let tag = uuid::Uuid::new_v4();
    std::fs::write(device.join("uuid"), format!("{tag}\n")).unwrap();
    assert_eq!(l.resolve(&format!("tag:{tag}")).unwrap(), node);
    assert!(matches!(l.resolve(&format!("tag:{old}")), Err(LocateError::NotFound { .. })));
    assert!(matches!(l.resolve(&format!("tag:{}", uuid::Uuid::new_v4())), Err(LocateError::NotFound { .. })));
    // An untagged device shows the nil UUID, which names nothing.
    std::fs::write(device.join("uuid"), format!("{}\n", uuid::Uuid::nil())).unwrap();
    std::fs::remove_file(device.join("tag")).unwrap();
    assert!(matches!(l.resolve(&format!("tag:{}", uuid::Uuid::nil())), Err(LocateError::NotFound { .. })));
}
