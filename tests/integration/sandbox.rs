//! Sandbox properties: a hostile program run with
//! exactly the WASI configuration our guest gets (`s3cache::sandbox::wasi_context`) tries every known
//! way out of its preopens — `..`, absolute paths, absolute symlinks, trailing-slash symlinks
//! (GHSA-vqjp-4c8c-hfgg), hard links and renames out of a read-only directory (GHSA-4ch3), and
//! truncating a read-only file (GHSA-2r75). Every attempt must fail and nothing outside may change.

use std::fs;

use s3cache::sandbox::{Preopen, wasi_context};
use s3cache_tests::snapshot;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The escape probe is denied everything, and the tree around its preopens is unchanged.
#[test]
fn escape_attempts_all_fail() {
    let probe = std::env::var("S3CACHE_ESCAPE_PROBE").expect("S3CACHE_ESCAPE_PROBE: built by scripts/test (scripts/build-guest --probe)");
    let root = tempfile::tempdir().unwrap();
    let (ro, rw) = (root.path().join("ro"), root.path().join("rw"));
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&rw).unwrap();
    fs::write(ro.join("file"), "read-only content").unwrap();
    fs::write(root.path().join("outside-secret"), "secret").unwrap();
    let before = snapshot(root.path());

    let preopens = [
        Preopen { host: ro.clone(), guest: "/ro".into(), writable: false },
        Preopen { host: rw.clone(), guest: "/rw".into(), writable: true },
    ];
    let stdout = MemoryOutputPipe::new(1 << 20);
    let mut builder = wasi_context(&preopens).unwrap();
    builder.stdout(stdout.clone());
    let engine = Engine::default();
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let component = Component::from_file(&engine, &probe).unwrap();
    let mut store = Store::new(&engine, State { wasi: builder.build(), table: ResourceTable::new() });
    let command = Command::instantiate(&mut store, &component, &linker).unwrap();
    command.wasi_cli_run().call_run(&mut store).unwrap().unwrap();

    let report = String::from_utf8(stdout.contents().to_vec()).unwrap();
    assert_eq!(report.lines().count(), 13, "{report}");
    for line in report.lines() {
        assert!(line.contains(": denied ("), "escaped: {line}\n{report}");
    }
    let mut after = snapshot(root.path());
    // Inside the writable preopen the probe may change what it likes (its mtime included); nothing
    // else may differ.
    let inside_rw = |path: &String| path == "rw" || path.starts_with("rw/");
    after.retain(|path, _| !inside_rw(path));
    let mut before = before;
    before.retain(|path, _| !inside_rw(path));
    assert_eq!(after, before, "{report}");
}
