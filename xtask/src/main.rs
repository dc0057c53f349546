//! `cargo run -p xtask -- componentize CORE.wasm OUT.wasm`: wraps the guest's core module, built for
//! `wasm32-wasip1`, into a component with the preview 1 reactor adapter, so the host can run it with
//! `wasmtime::component`. The adapter comes from the crate versioned with the host's wasmtime, which
//! keeps the component's WASI imports in step with what the host provides.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER};
use wit_component::ComponentEncoder;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [command, core, out] if command == "componentize" => {
            componentize(PathBuf::from(core), PathBuf::from(out), WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
        }
        [command, core, out] if command == "componentize-command" => {
            componentize(PathBuf::from(core), PathBuf::from(out), WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
        }
        _ => bail!("usage: xtask componentize|componentize-command CORE.wasm OUT.wasm"),
    }
}

/// Wraps a core module with a preview-1 adapter: the reactor one for the guest library, the command
/// one for test programs with a `main` (tests/escape-probe).
fn componentize(core: PathBuf, out: PathBuf, adapter: &[u8]) -> Result<()> {
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)?
        .adapter("wasi_snapshot_preview1", adapter)?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{}: {} bytes (core module {} bytes)", out.display(), component.len(), module.len());
    Ok(())
}
