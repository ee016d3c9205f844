// SPDX-License-Identifier: LGPL-2.1-or-later
//! Raw declarations of libgmem's C API (`include/gmem/gmem.h`), for the safe wrapper in lib.rs and
//! for callers who need what it does not wrap. Each `fn` here is checked against gmem.h by
//! `tests/check-rust.sh` in `make check`: same name, same number and types of parameters, same
//! return type; the constants against the header's values.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

/// `enum gmem_backend`
pub type gmem_backend = c_int;
pub const GMEM_BACKEND_MEMFD: gmem_backend = 0;
pub const GMEM_BACKEND_HUGETLB: gmem_backend = 1;
pub const GMEM_BACKEND_SECRET: gmem_backend = 2;
pub const GMEM_BACKEND_GUEST_MEMFD: gmem_backend = 3;
pub const GMEM_BACKEND_INVALID: gmem_backend = -1;

/// `enum gmem_policy`
pub type gmem_policy = c_int;
pub const GMEM_POLICY_KEEP: gmem_policy = 0;
pub const GMEM_POLICY_CONNECTION: gmem_policy = 1;

/// guest_memfd creation flags
pub const GMEM_GUEST_MEMFD_FLAG_MMAP: u64 = 0x1;
pub const GMEM_GUEST_MEMFD_FLAG_INIT_SHARED: u64 = 0x2;

/// `GMEM_LENGTH_TO_END`: "to the end of the region" for the client's populate, prefault, dump
pub const GMEM_LENGTH_TO_END: u64 = 0xffff_ffff_ffff_ffff;

/// `struct gmem_region` (opaque)
#[repr(C)]
pub struct gmem_region {
    _private: [u8; 0],
}

/// `struct gmem_client` (opaque)
#[repr(C)]
pub struct gmem_client {
    _private: [u8; 0],
}

/// `struct gmem_populate_opts`: pass NULL for the defaults
#[repr(C)]
pub struct gmem_populate_opts {
    _private: [u8; 0],
}

/// `struct gmem_create_opts`: pass NULL for the defaults
#[repr(C)]
pub struct gmem_create_opts {
    _private: [u8; 0],
}

extern "C" {
    pub fn gmem_version() -> *const c_char;
    pub fn gmem_last_error() -> *const c_char;
    pub fn gmem_backend_to_string(b: gmem_backend) -> *const c_char;
    pub fn gmem_backend_from_string(s: *const c_char, ret: *mut gmem_backend) -> c_int;

    pub fn gmem_region_new_memfd(backend: gmem_backend, size: u64, ret: *mut *mut gmem_region) -> c_int;
    pub fn gmem_region_new_hugetlb(page_size: u64, size: u64, ret: *mut *mut gmem_region) -> c_int;
    pub fn gmem_region_new_guest_memfd(vm_fd: c_int, size: u64, flags: u64, ret: *mut *mut gmem_region) -> c_int;
    pub fn gmem_region_adopt(fd: c_int, ret: *mut *mut gmem_region) -> c_int;
    pub fn gmem_region_free(r: *mut gmem_region) -> *mut gmem_region;
    pub fn gmem_region_fd(r: *const gmem_region) -> c_int;
    pub fn gmem_region_size(r: *const gmem_region) -> u64;
    pub fn gmem_region_backend(r: *const gmem_region) -> gmem_backend;
    pub fn gmem_region_flags(r: *const gmem_region) -> u64;
    pub fn gmem_region_page_size(r: *const gmem_region) -> u64;
    pub fn gmem_region_map(r: *mut gmem_region, ret_addr: *mut *mut c_void) -> c_int;
    pub fn gmem_region_unmap(r: *mut gmem_region) -> c_int;
    pub fn gmem_region_resident(r: *mut gmem_region, off: u64, len: u64, ret_bytes: *mut u64) -> c_int;

    pub fn gmem_populate_fd(
        r: *mut gmem_region,
        dst_off: u64,
        src_fd: c_int,
        src_off: u64,
        len: u64,
        opts: *const gmem_populate_opts,
    ) -> i64;
    pub fn gmem_populate_buf(
        r: *mut gmem_region,
        dst_off: u64,
        buf: *const c_void,
        len: u64,
        opts: *const gmem_populate_opts,
    ) -> i64;
    pub fn gmem_prefault(r: *mut gmem_region, off: u64, len: u64, opts: *const gmem_populate_opts) -> c_int;
    pub fn gmem_punch_hole(r: *mut gmem_region, off: u64, len: u64) -> c_int;
    pub fn gmem_kvm_bind(vm_fd: c_int, slot: u32, gpa: u64, r: *mut gmem_region, off: u64, len: u64) -> c_int;

    pub fn gmem_client_connect(socket_path: *const c_char, ret: *mut *mut gmem_client) -> c_int;
    pub fn gmem_client_free(c: *mut gmem_client) -> *mut gmem_client;
    pub fn gmem_client_default_socket(ret_path: *mut *mut c_char) -> c_int;
    pub fn gmem_client_user_socket(ret_path: *mut *mut c_char) -> c_int;
    pub fn gmem_client_name_fd(c: *mut gmem_client, fd: c_int, name: *const c_char) -> c_int;
    pub fn gmem_client_create(
        c: *mut gmem_client,
        name: *const c_char,
        backend: gmem_backend,
        size: u64,
        opts: *const gmem_create_opts,
    ) -> c_int;
    pub fn gmem_client_register(c: *mut gmem_client, name: *const c_char, r: *mut gmem_region) -> c_int;
    pub fn gmem_client_open(c: *mut gmem_client, name: *const c_char, ret: *mut *mut gmem_region) -> c_int;
    pub fn gmem_client_populate_fd(
        c: *mut gmem_client,
        name: *const c_char,
        dst_off: u64,
        src_fd: c_int,
        src_off: u64,
        len: u64,
    ) -> c_int;
    pub fn gmem_client_prefault(c: *mut gmem_client, name: *const c_char, off: u64, len: u64) -> c_int;
    pub fn gmem_client_punch(c: *mut gmem_client, name: *const c_char, off: u64, len: u64) -> c_int;
    pub fn gmem_client_release(c: *mut gmem_client, name: *const c_char) -> c_int;
    pub fn gmem_client_list(c: *mut gmem_client, ret_json: *mut *mut c_char) -> c_int;
    pub fn gmem_client_info(c: *mut gmem_client, name: *const c_char, ret_json: *mut *mut c_char) -> c_int;

    // the strings libgmem hands over are malloc'ed
    pub fn free(p: *mut c_void);
}
