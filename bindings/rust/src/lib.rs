// SPDX-License-Identifier: LGPL-2.1-or-later
//! Guest memory for KVM hosts, from Rust: the safe side of libgmem.
//!
//! A [`Region`] is one guest memory file (memfd, hugetlb, memfd_secret or a VM's guest_memfd)
//! with its mapping; it is freed (file closed, mapping gone) when dropped. Populate, prefault and
//! punch return [`std::io::Result`]: the error's [`std::io::Error::raw_os_error`] is the errno
//! libgmem returned and its message is libgmem's (`"populate: ..."`). A [`Client`] talks to
//! gmemd. The raw C API is in [`sys`].
//!
//! ```no_run
//! let mut r = gmem::Region::new_memfd(gmem::Backend::Memfd, 2 << 20)?;
//! r.populate_buf(0, b"guest kernel")?;
//! assert_eq!(&r.as_slice()?[..12], b"guest kernel");
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod sys;

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::Path;
use std::ptr;

/// The version of the libgmem this program runs with.
pub fn version() -> String {
    unsafe { CStr::from_ptr(sys::gmem_version()) }.to_string_lossy().into_owned()
}

/// libgmem's failure as an io::Error: the errno (raw_os_error) and libgmem's message.
fn error(k: i64) -> io::Error {
    let errno = (-k) as i32;
    let msg = unsafe { CStr::from_ptr(sys::gmem_last_error()) }.to_string_lossy().into_owned();
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(kind, Error { errno, message: msg })
}

/// What libgmem said when a call failed; the inner error of every io::Error this crate returns.
#[derive(Debug, Clone)]
pub struct Error {
    /// The positive errno (`EINVAL`, ...).
    pub errno: i32,
    /// libgmem's message, naming the call and the object.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for Error {}

/// The errno of an error this crate returned.
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>()).map(|g| g.errno).or_else(|| e.raw_os_error())
}

fn check(k: c_int) -> io::Result<()> {
    if k < 0 {
        Err(error(k as i64))
    } else {
        Ok(())
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a name"))
}

/// Where a region's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memfd,
    Hugetlb,
    Secret,
    GuestMemfd,
}

impl Backend {
    fn raw(self) -> sys::gmem_backend {
        match self {
            Backend::Memfd => sys::GMEM_BACKEND_MEMFD,
            Backend::Hugetlb => sys::GMEM_BACKEND_HUGETLB,
            Backend::Secret => sys::GMEM_BACKEND_SECRET,
            Backend::GuestMemfd => sys::GMEM_BACKEND_GUEST_MEMFD,
        }
    }

    fn from_raw(b: sys::gmem_backend) -> Option<Backend> {
        match b {
            sys::GMEM_BACKEND_MEMFD => Some(Backend::Memfd),
            sys::GMEM_BACKEND_HUGETLB => Some(Backend::Hugetlb),
            sys::GMEM_BACKEND_SECRET => Some(Backend::Secret),
            sys::GMEM_BACKEND_GUEST_MEMFD => Some(Backend::GuestMemfd),
            _ => None,
        }
    }

    /// libgmem's name for it: "memfd", "hugetlb", "secret", "guest_memfd".
    pub fn name(self) -> &'static str {
        let p = unsafe { sys::gmem_backend_to_string(self.raw()) };
        unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("?")
    }
}

/// One guest memory file and its mapping. Dropping it frees both.
pub struct Region {
    raw: *mut sys::gmem_region,
}

// a region is used by one thread at a time; it may move between threads
unsafe impl Send for Region {}

impl Region {
    fn from_ret(k: c_int, raw: *mut sys::gmem_region) -> io::Result<Region> {
        check(k)?;
        Ok(Region { raw })
    }

    /// A memfd-family region (memfd, hugetlb with 2 MiB pages, or memfd_secret) of size bytes.
    pub fn new_memfd(backend: Backend, size: u64) -> io::Result<Region> {
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_region_new_memfd(backend.raw(), size, &mut raw) };
        Region::from_ret(k, raw)
    }

    /// A hugetlb region with pages of page_size (2 MiB or 1 GiB).
    pub fn new_hugetlb(page_size: u64, size: u64) -> io::Result<Region> {
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_region_new_hugetlb(page_size, size, &mut raw) };
        Region::from_ret(k, raw)
    }

    /// A guest_memfd on the VM whose fd is vm_fd (the VMM's own VM), with KVM's flags.
    pub fn new_guest_memfd(vm_fd: RawFd, size: u64, flags: u64) -> io::Result<Region> {
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_region_new_guest_memfd(vm_fd, size, flags, &mut raw) };
        Region::from_ret(k, raw)
    }

    /// Take ownership of fd (a memfd, hugetlb memfd, memfd_secret or guest_memfd).
    pub fn adopt(fd: RawFd) -> io::Result<Region> {
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_region_adopt(fd, &mut raw) };
        Region::from_ret(k, raw)
    }

    pub fn size(&self) -> u64 {
        unsafe { sys::gmem_region_size(self.raw) }
    }

    pub fn backend(&self) -> Option<Backend> {
        Backend::from_raw(unsafe { sys::gmem_region_backend(self.raw) })
    }

    /// The guest_memfd flags (0 for the memfd family).
    pub fn flags(&self) -> u64 {
        unsafe { sys::gmem_region_flags(self.raw) }
    }

    /// The unit of prefault and punch.
    pub fn page_size(&self) -> u64 {
        unsafe { sys::gmem_region_page_size(self.raw) }
    }

    /// The region's shared read-write mapping (made on first use).
    pub fn as_mut_ptr(&mut self) -> io::Result<*mut u8> {
        let mut addr: *mut c_void = ptr::null_mut();
        check(unsafe { sys::gmem_region_map(self.raw, &mut addr) })?;
        Ok(addr as *mut u8)
    }

    /// The memory as bytes. Another process or the guest may write it meanwhile (it is shared):
    /// what is read is what was there.
    pub fn as_slice(&mut self) -> io::Result<&[u8]> {
        let len = self.size() as usize;
        let p = self.as_mut_ptr()?;
        Ok(unsafe { std::slice::from_raw_parts(p, len) })
    }

    pub fn as_mut_slice(&mut self) -> io::Result<&mut [u8]> {
        let len = self.size() as usize;
        let p = self.as_mut_ptr()?;
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// Bytes of [off, off+len) backed by memory.
    pub fn resident(&mut self, off: u64, len: u64) -> io::Result<u64> {
        let mut n = 0;
        check(unsafe { sys::gmem_region_resident(self.raw, off, len, &mut n) })?;
        Ok(n)
    }

    /// Copy buf into the region at off (in parallel, through the mapping or write()).
    pub fn populate_buf(&mut self, off: u64, buf: &[u8]) -> io::Result<u64> {
        let k = unsafe { sys::gmem_populate_buf(self.raw, off, buf.as_ptr() as *const c_void, buf.len() as u64, ptr::null()) };
        if k < 0 {
            return Err(error(k));
        }
        Ok(k as u64)
    }

    /// Copy len bytes of src from src_off into the region at off.
    pub fn populate_fd(&mut self, off: u64, src: &impl AsRawFd, src_off: u64, len: u64) -> io::Result<u64> {
        let k = unsafe { sys::gmem_populate_fd(self.raw, off, src.as_raw_fd(), src_off, len, ptr::null()) };
        if k < 0 {
            return Err(error(k));
        }
        Ok(k as u64)
    }

    /// Allocate [off, off+len) now (page aligned).
    pub fn prefault(&mut self, off: u64, len: u64) -> io::Result<()> {
        check(unsafe { sys::gmem_prefault(self.raw, off, len, ptr::null()) })
    }

    /// Discard [off, off+len) (page aligned): it reads back as zeroes.
    pub fn punch_hole(&mut self, off: u64, len: u64) -> io::Result<()> {
        check(unsafe { sys::gmem_punch_hole(self.raw, off, len) })
    }

    /// Bind [off, off+len) as KVM memslot slot at guest-physical gpa on vm_fd (len 0 deletes it).
    pub fn kvm_bind(&mut self, vm_fd: RawFd, slot: u32, gpa: u64, off: u64, len: u64) -> io::Result<()> {
        check(unsafe { sys::gmem_kvm_bind(vm_fd, slot, gpa, self.raw, off, len) })
    }

    /// The raw handle, for calls of [`sys`] this crate does not wrap. Still owned by self.
    pub fn as_raw(&self) -> *mut sys::gmem_region {
        self.raw
    }
}

impl AsRawFd for Region {
    fn as_raw_fd(&self) -> RawFd {
        unsafe { sys::gmem_region_fd(self.raw) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        unsafe { sys::gmem_region_free(self.raw) };
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("backend", &self.backend()).field("size", &self.size()).finish()
    }
}

/// A strdup'ed C string from libgmem, as a String (and freed).
unsafe fn take_string(p: *mut c_char) -> String {
    let s = CStr::from_ptr(p).to_string_lossy().into_owned();
    sys::free(p as *mut c_void);
    s
}

/// A connection to gmemd.
pub struct Client {
    raw: *mut sys::gmem_client,
}

unsafe impl Send for Client {}

impl Client {
    /// Connect to gmemd at socket (None: $GMEMD_SOCKET, else the system gmemd's socket).
    pub fn connect(socket: Option<&Path>) -> io::Result<Client> {
        let path = match socket {
            Some(p) => Some(cstring(p.to_str().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a socket path that is not UTF-8"))?)?),
            None => None,
        };
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_client_connect(path.as_ref().map_or(ptr::null(), |p| p.as_ptr()), &mut raw) };
        check(k)?;
        Ok(Client { raw })
    }

    /// The path connect(None) uses.
    pub fn default_socket() -> io::Result<String> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::gmem_client_default_socket(&mut p) })?;
        Ok(unsafe { take_string(p) })
    }

    /// A user's own gmemd's socket: $XDG_RUNTIME_DIR/gmemd/gmemd.sock.
    pub fn user_socket() -> io::Result<String> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::gmem_client_user_socket(&mut p) })?;
        Ok(unsafe { take_string(p) })
    }

    /// gmemd creates region name (memfd, hugetlb or secret) of size bytes; it stays until released.
    pub fn create(&mut self, name: &str, backend: Backend, size: u64) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_create(self.raw, n.as_ptr(), backend.raw(), size, ptr::null()) })
    }

    /// Hand gmemd custody of a region this process made (a guest_memfd of its VM, say).
    pub fn register(&mut self, name: &str, region: &Region) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_register(self.raw, n.as_ptr(), region.raw) })
    }

    /// A region of this process over the fd gmemd hands out.
    pub fn open(&mut self, name: &str) -> io::Result<Region> {
        let n = cstring(name)?;
        let mut raw = ptr::null_mut();
        let k = unsafe { sys::gmem_client_open(self.raw, n.as_ptr(), &mut raw) };
        Region::from_ret(k, raw)
    }

    /// gmemd copies len bytes of src (from src_off) into region name at off, on its workers.
    pub fn populate_fd(&mut self, name: &str, off: u64, src: &impl AsRawFd, src_off: u64, len: u64) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_populate_fd(self.raw, n.as_ptr(), off, src.as_raw_fd(), src_off, len) })
    }

    /// What the caller calls fd (the path it opened, say): gmemd's errors about it then say
    /// 'NAME', not gmemd's own fd number. None forgets the name.
    pub fn name_fd(&mut self, fd: &impl AsRawFd, name: Option<&str>) -> io::Result<()> {
        let n = match name {
            Some(s) => Some(cstring(s)?),
            None => None,
        };
        let p = n.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        check(unsafe { sys::gmem_client_name_fd(self.raw, fd.as_raw_fd(), p) })
    }

    /// len None: to the end of the region.
    pub fn prefault(&mut self, name: &str, off: u64, len: Option<u64>) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_prefault(self.raw, n.as_ptr(), off, len.unwrap_or(sys::GMEM_LENGTH_TO_END)) })
    }

    pub fn punch(&mut self, name: &str, off: u64, len: u64) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_punch(self.raw, n.as_ptr(), off, len) })
    }

    pub fn release(&mut self, name: &str) -> io::Result<()> {
        let n = cstring(name)?;
        check(unsafe { sys::gmem_client_release(self.raw, n.as_ptr()) })
    }

    /// The regions this caller may see, as gmemd's JSON (docs/protocol.md).
    pub fn list_json(&mut self) -> io::Result<String> {
        let mut p = ptr::null_mut();
        check(unsafe { sys::gmem_client_list(self.raw, &mut p) })?;
        Ok(unsafe { take_string(p) })
    }

    /// One region, as gmemd's JSON.
    pub fn info_json(&mut self, name: &str) -> io::Result<String> {
        let n = cstring(name)?;
        let mut p = ptr::null_mut();
        check(unsafe { sys::gmem_client_info(self.raw, n.as_ptr(), &mut p) })?;
        Ok(unsafe { take_string(p) })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        unsafe { sys::gmem_client_free(self.raw) };
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}
