// SPDX-License-Identifier: LGPL-2.1-or-later
// A real KVM guest whose memory is a gmem Region: the region is filled through the binding,
// bound as the guest's memslot through the binding, and the guest (16-bit code, run by KVM)
// sums all of it and reports the sum on an I/O port, which must be the sum the host computes.
// Then the host punches a page through the binding and the guest, run again, must see zeroes
// there. Without /dev/kvm the test says SKIP and passes (make check runs it where KVM works).
use std::fs::OpenOptions;
use std::io;
use std::os::raw::{c_int, c_ulong, c_void};
use std::os::unix::io::AsRawFd;

use gmem::{Backend, Region};

extern "C" {
    fn ioctl(fd: c_int, req: c_ulong, ...) -> c_int;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn close(fd: c_int) -> c_int;
}

const KVM_CREATE_VM: c_ulong = 0xAE01;
const KVM_GET_VCPU_MMAP_SIZE: c_ulong = 0xAE04;
const KVM_CREATE_VCPU: c_ulong = 0xAE41;
const KVM_SET_TSS_ADDR: c_ulong = 0xAE47;
const KVM_RUN: c_ulong = 0xAE80;
const KVM_GET_REGS: c_ulong = 0x8090_AE81;
const KVM_SET_REGS: c_ulong = 0x4090_AE82;
const KVM_EXIT_IO: u32 = 2;
const KVM_EXIT_HLT: u32 = 5;
const PROT_RW: c_int = 3;
const MAP_SHARED: c_int = 1;

const MEM: u64 = 1 << 20; // the guest sums 16 segments of 64 KiB: all of it
const CODE_GPA: u64 = 0xffff_0000; // where the vCPU's reset CS (base 0xffff0000) points

// xor bx,bx; xor dx,dx
// outer: mov ds,dx; xor si,si; mov cx,0x8000; cld
// inner: lodsw; add bx,ax; loop inner
//        add dx,0x1000; cmp dx,0 (16 segments: dx wraps to 0); jne outer
// mov ax,bx; out 0x10,ax; hlt
const GUEST: [u8; 32] = [
    0x31, 0xDB, 0x31, 0xD2, 0x8E, 0xDA, 0x31, 0xF6, 0xB9, 0x00, 0x80, 0xFC, 0xAD, 0x01, 0xC3, 0xE2, 0xFB, 0x81, 0xC2,
    0x00, 0x10, 0x81, 0xFA, 0x00, 0x00, 0x75, 0xE9, 0x89, 0xD8, 0xE7, 0x10, 0xF4,
];

fn os(k: c_int, what: &str) -> io::Result<c_int> {
    if k < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{}: {}", what, e)))
    } else {
        Ok(k)
    }
}

/// The 16-bit sum the guest computes: the memory as little-endian words, added mod 2^16.
fn word_sum(mem: &[u8]) -> u16 {
    mem.chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])))
}

struct Vm {
    vm: c_int,
    vcpu: c_int,
    run: *mut u8,
    run_size: usize,
}

impl Vm {
    fn new(mem: &mut Region, code: &mut Region) -> io::Result<Vm> {
        let kvm = OpenOptions::new().read(true).write(true).open("/dev/kvm")?;
        let vm = os(unsafe { ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0 as c_ulong) }, "KVM_CREATE_VM")?;
        os(unsafe { ioctl(vm, KVM_SET_TSS_ADDR, 0xfffb_d000 as c_ulong) }, "KVM_SET_TSS_ADDR")?;
        // the guest's memory and its code, both gmem regions bound through the binding
        mem.kvm_bind(vm, 0, 0, 0, MEM)?;
        code.kvm_bind(vm, 1, CODE_GPA, 0, code.size())?;
        let vcpu = os(unsafe { ioctl(vm, KVM_CREATE_VCPU, 0 as c_ulong) }, "KVM_CREATE_VCPU")?;
        let run_size = os(unsafe { ioctl(kvm.as_raw_fd(), KVM_GET_VCPU_MMAP_SIZE, 0 as c_ulong) }, "KVM_GET_VCPU_MMAP_SIZE")? as usize;
        let run = unsafe { mmap(std::ptr::null_mut(), run_size, PROT_RW, MAP_SHARED, vcpu, 0) };
        if run as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Vm { vm, vcpu, run: run as *mut u8, run_size })
    }

    /// Run the guest from its first instruction until it halts; the word it wrote to port 0x10.
    fn sum(&mut self) -> io::Result<u16> {
        let mut regs = [0u64; 18]; // struct kvm_regs: rax..r15, rip, rflags
        os(unsafe { ioctl(self.vcpu, KVM_GET_REGS, regs.as_mut_ptr()) }, "KVM_GET_REGS")?;
        regs[16] = 0; // rip: CS base 0xffff0000 + 0, the code region's first byte
        regs[17] = 2; // rflags
        os(unsafe { ioctl(self.vcpu, KVM_SET_REGS, regs.as_ptr()) }, "KVM_SET_REGS")?;
        let mut out = None;
        for _ in 0..1000 {
            os(unsafe { ioctl(self.vcpu, KVM_RUN, 0 as c_ulong) }, "KVM_RUN")?;
            let reason = unsafe { std::ptr::read_unaligned(self.run.add(8) as *const u32) };
            match reason {
                KVM_EXIT_IO => {
                    // struct kvm_run's io: direction u8, size u8, port u16, count u32, data_offset u64
                    let io = unsafe { self.run.add(32) };
                    let (size, port) = unsafe { (*io.add(1), std::ptr::read_unaligned(io.add(2) as *const u16)) };
                    let off = unsafe { std::ptr::read_unaligned(io.add(8) as *const u64) } as usize;
                    assert_eq!((port, size), (0x10, 2), "an unexpected port write");
                    out = Some(unsafe { std::ptr::read_unaligned(self.run.add(off) as *const u16) });
                }
                KVM_EXIT_HLT => return out.ok_or_else(|| io::Error::new(io::ErrorKind::Other, "halted without a sum")),
                r => return Err(io::Error::new(io::ErrorKind::Other, format!("unexpected KVM exit {}", r))),
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "the guest did not halt"))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        unsafe {
            munmap(self.run as *mut c_void, self.run_size);
            close(self.vcpu);
            close(self.vm);
        }
    }
}

#[test]
fn a_real_guest_reads_its_memory_through_the_binding() {
    if OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        eprintln!("SKIP: no usable /dev/kvm here");
        return;
    }
    let mut mem = Region::new_memfd(Backend::Memfd, MEM).expect("memory region");
    let mut code = Region::new_memfd(Backend::Memfd, 64 << 10).expect("code region");
    let data: Vec<u8> = (0..MEM as usize).map(|i| ((i * 2654435761usize) >> 13) as u8).collect();
    assert_eq!(mem.populate_buf(0, &data).unwrap(), MEM);
    code.populate_buf(0, &GUEST).unwrap();
    let mut vm = Vm::new(&mut mem, &mut code).expect("a VM on the regions");

    let want = word_sum(&data);
    assert_ne!(want, 0);
    assert_eq!(vm.sum().unwrap(), want, "the guest's sum of its memory");

    // a page punched through the binding reads as zeroes in the guest
    let ps = mem.page_size();
    mem.punch_hole(4 * ps, ps).unwrap();
    let mut after = data.clone();
    after[(4 * ps) as usize..(5 * ps) as usize].iter_mut().for_each(|b| *b = 0);
    assert_eq!(vm.sum().unwrap(), word_sum(&after), "the guest's sum after the punch");
    assert_eq!(word_sum(mem.as_slice().unwrap()), word_sum(&after));
}
