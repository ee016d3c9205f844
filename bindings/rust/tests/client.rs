// SPDX-License-Identifier: LGPL-2.1-or-later
// The client against a real gmemd: the build's own ($GMEM_BUILD/bin/gmemd, as make check sets
// it), on a private socket. Without one the test says SKIP and passes.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gmem::{Backend, Client};

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> Option<(Daemon, PathBuf)> {
    let gmemd = PathBuf::from(std::env::var_os("GMEM_BUILD")?).join("bin/gmemd");
    if !gmemd.exists() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("gmem-rust-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("gmemd.sock");
    let child = Command::new(&gmemd)
        .args(["--bus", "none", "--socket"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .expect("start gmemd");
    let d = Daemon { child, dir };
    let t = Instant::now();
    while Client::connect(Some(&sock)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(5), "gmemd did not come up on {:?}", sock);
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((d, sock))
}

#[test]
fn create_open_populate_release() {
    let (_d, sock) = match start() {
        Some(x) => x,
        None => {
            eprintln!("SKIP: no gmemd build ($GMEM_BUILD)");
            return;
        }
    };
    let mut c = Client::connect(Some(&sock)).unwrap();
    c.create("rs0", Backend::Memfd, 2 << 20).unwrap();
    let e = c.create("rs0", Backend::Memfd, 2 << 20).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(17), "{}", e); // EEXIST
    {
        let mut r = c.open("rs0").unwrap();
        assert_eq!(r.size(), 2 << 20);
        r.populate_buf(4096, b"from rust").unwrap();
        // a second open sees the same memory: it is gmemd's file
        let mut again = c.open("rs0").unwrap();
        assert_eq!(&again.as_slice().unwrap()[4096..4105], b"from rust");
    }
    // a source that cannot be read at an offset: gmemd's error names it as the caller called it
    let (src, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    c.name_fd(&src, Some("guest.img")).unwrap();
    let e = c.populate_fd("rs0", 0, &src, 0, 8192).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(29), "{}", e); // ESPIPE
    assert!(e.to_string().contains("source 'guest.img' is not a seekable file"), "{}", e);
    let e = c.name_fd(&src, Some("a\nb")).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(22), "{}", e); // EINVAL
    c.name_fd(&src, None).unwrap();
    c.prefault("rs0", 0, None).unwrap();
    c.punch("rs0", 0, 4096).unwrap();
    let info = c.info_json("rs0").unwrap();
    assert!(info.contains("\"name\":\"rs0\""), "{}", info);
    assert!(c.list_json().unwrap().contains("rs0"));
    c.release("rs0").unwrap();
    let e = c.release("rs0").unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(2), "{}", e); // ENOENT
    assert!(!c.list_json().unwrap().contains("rs0"));
}

#[test]
fn sockets() {
    std::env::remove_var("GMEMD_SOCKET");
    assert_eq!(Client::default_socket().unwrap(), "/run/gmemd/gmemd.sock");
    let e = Client::connect(Some(std::path::Path::new("/nonexistent/gmemd.sock"))).unwrap_err();
    assert_eq!(gmem::errno_of(&e), Some(2), "{}", e);
}
