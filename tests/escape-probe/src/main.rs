//! Tries to escape the directories s3cache preopens for its guest, the way the wasmtime WASI
//! advisories did (GHSA-4ch3: hard links and renames out of a read-only dir; GHSA-2r75: truncating a
//! read-only file; GHSA-vqjp: trailing slashes on symlinks), plus `..`, absolute paths and absolute
//! symlinks. It prints one line per attempt: `NAME: ALLOWED` or `NAME: denied (...)`.
//!
//! Preopens expected: `/ro` read-only (holding `file`) and `/rw` read-write (empty).

#![feature(wasi_ext)]

use std::fs::{self, OpenOptions};
use std::io;
use std::os::wasi::fs::symlink_path;

fn attempts() -> Vec<(&'static str, Box<dyn Fn() -> io::Result<()>>)> {
    vec![
        ("read-dotdot", Box::new(|| fs::read("/ro/../outside-secret").map(drop))),
        ("read-absolute", Box::new(|| fs::read("/etc/hostname").map(drop))),
        ("write-read-only", Box::new(|| fs::write("/ro/new", b"x"))),
        ("truncate-read-only", Box::new(|| OpenOptions::new().write(true).truncate(true).open("/ro/file").map(drop))),
        ("append-read-only", Box::new(|| OpenOptions::new().append(true).open("/ro/file").map(drop))),
        ("remove-read-only", Box::new(|| fs::remove_file("/ro/file"))),
        ("rename-out-of-read-only", Box::new(|| fs::rename("/ro/file", "/rw/moved"))),
        ("hard-link-out-of-read-only", Box::new(|| fs::hard_link("/ro/file", "/rw/linked"))),
        ("symlink-absolute", Box::new(|| symlink_path("/etc/hostname", "/rw/abs"))),
        ("symlink-dotdot-then-write", Box::new(|| symlink_path("..", "/rw/up").and_then(|()| fs::write("/rw/up/escaped", b"x")))),
        ("symlink-trailing-slash", Box::new(|| symlink_path("../..", "/rw/slash/").and_then(|()| fs::write("/rw/slash/escaped", b"x")))),
        ("create-via-trailing-slash", Box::new(|| fs::write("/rw/../escaped/", b"x"))),
        ("mkdir-outside", Box::new(|| fs::create_dir("/rw/../escaped-dir"))),
    ]
}

fn main() {
    for (name, attempt) in attempts() {
        match attempt() {
            Ok(()) => println!("{name}: ALLOWED"),
            Err(e) => println!("{name}: denied ({e})"),
        }
    }
}
