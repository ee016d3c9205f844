// SPDX-License-Identifier: LGPL-2.1-or-later
// Regions through the safe wrapper, on this machine's real kernel.
use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;

use gmem::{Backend, Region};

const MIB: u64 = 1 << 20;

#[test]
fn memfd_populate_punch_prefault() {
    let mut r = Region::new_memfd(Backend::Memfd, 4 * MIB).expect("memfd region");
    assert_eq!(r.size(), 4 * MIB);
    assert_eq!(r.backend(), Some(Backend::Memfd));
    assert_eq!(Backend::Memfd.name(), "memfd");
    assert!(r.as_raw_fd() >= 0);
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(r.populate_buf(MIB, &data).unwrap(), MIB);
    assert_eq!(&r.as_slice().unwrap()[MIB as usize..2 * MIB as usize], &data[..]);
    // from a file
    let path = std::env::temp_dir().join(format!("gmem-rust-{}.bin", std::process::id()));
    File::create(&path).unwrap().write_all(&data).unwrap();
    let f = File::open(&path).unwrap();
    assert_eq!(r.populate_fd(3 * MIB, &f, 4096, MIB - 4096).unwrap(), MIB - 4096);
    assert_eq!(&r.as_slice().unwrap()[3 * MIB as usize..4 * MIB as usize - 4096], &data[4096..]);
    std::fs::remove_file(&path).unwrap();
    // punch: zeroes; prefault: resident
    let ps = r.page_size();
    r.punch_hole(MIB, ps).unwrap();
    assert!(r.as_slice().unwrap()[MIB as usize..(MIB + ps) as usize].iter().all(|&b| b == 0));
    r.prefault(0, MIB).unwrap();
    assert!(r.resident(0, MIB).unwrap() >= MIB);
    // writes through the slice are the file's
    r.as_mut_slice().unwrap()[0] = 0xAB;
    assert_eq!(r.as_slice().unwrap()[0], 0xAB);
}

#[test]
fn errors_carry_errno_and_message() {
    let e = Region::new_memfd(Backend::Memfd, 0).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(22)); // EINVAL
    assert!(!e.to_string().is_empty());
    let mut r = Region::new_memfd(Backend::Memfd, 2 * MIB).unwrap();
    let e = r.populate_buf(2 * MIB - 10, &[0u8; 100]).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(34), "{}", e); // ERANGE: beyond the region
    let e = r.punch_hole(1, 4096).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(22), "{}", e);
    // nothing changed by the refusals
    assert!(r.as_slice().unwrap().iter().all(|&b| b == 0));
    let e = Region::new_memfd(Backend::GuestMemfd, 2 * MIB).unwrap_err();
    assert!(gmem::errno_of(&e).is_some(), "{}", e);
}

#[test]
fn dropped_regions_close_their_fd() {
    use std::os::unix::fs::MetadataExt;
    let (fd, ino) = {
        let r = Region::new_memfd(Backend::Memfd, 2 * MIB).unwrap();
        let fd = r.as_raw_fd();
        (fd, std::fs::metadata(format!("/proc/self/fd/{}", fd)).unwrap().ino())
    };
    // (tests run in threads: another may have taken the number since, but not for this file)
    let now = std::fs::metadata(format!("/proc/self/fd/{}", fd)).ok().map(|m| m.ino());
    assert_ne!(now, Some(ino), "fd {} still open on the region's memfd", fd);
}

#[test]
fn version_is_the_headers() {
    // the crate is the library's MAJOR.MINOR plus .0 (tests/check-version.sh holds them together)
    assert_eq!(format!("{}.0", gmem::version()), env!("CARGO_PKG_VERSION"));
}
