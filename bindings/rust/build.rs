// SPDX-License-Identifier: LGPL-2.1-or-later
// Link libgmem: from $GMEM_LIB_DIR when set (gmem's own build tree, as `make check` runs the
// tests), else wherever pkg-config's libgmem.pc says, else the linker's default search path
// (an installed libgmem-dev).
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GMEM_LIB_DIR");
    if let Ok(dir) = env::var("GMEM_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        // the tests run against that library without installing it
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    } else if let Ok(out) = Command::new("pkg-config").args(["--libs-only-L", "libgmem"]).output() {
        for flag in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={}", dir);
            }
        }
    }
    println!("cargo:rustc-link-lib=dylib=gmem");
}
