//! Running the guest: the guest component compiled once per machine and reused from disk
//! (`crate::sandbox::compiled`: Winch at once, Cranelift for heavy work), and one store per guest instance
//! with its own preopens, memory cap and deadline.
//!
//! The guest gets no environment, no network, no stdio and only the directories passed as
//! [`Preopen`]s. Its imports are narrow: a log that the host escapes, environment lookups that the host
//! filters (`crate::env_vars::may_expose_to_templates`), the archive byte stream, and native file
//! hashing and extraction writes beneath its own preopens (`crate::sandbox::host_files`). WASI file
//! operations block on the calling thread (`allow_blocking_current_thread`): per-file WASI calls are
//! the known cost of this design, and this removes a thread hop from each.

pub(crate) mod bindings;
pub(crate) mod compiled;
pub(crate) mod host_files;
pub(crate) mod stat_ahead;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::report::Reporter;
/// What a restore accepts from an archive (members, bytes, path length and depth, zstd window):
/// the WIT contract's `unpack-limits`, checked by the guest.
pub use crate::sandbox::bindings::UnpackLimits;
use crate::sandbox::bindings::{
    CacheGuest, Compression, GuestError, Member, PackOptions, PackSummary, Resolution, Root, TemplateContext, UnpackReport,
};
use crate::sandbox::compiled::{CompiledGuest, EPOCH_TICK, Successor};
use crate::sandbox::host_files::HostFiles;
use crate::sandbox::stat_ahead::Lstats;
use crate::ui::output;

/// The guest component, built by `scripts/build-guest` from `guest/` and committed.
pub const GUEST_COMPONENT: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/embedded/s3cache-guest.wasm"));

/// Limits for each guest instance.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Largest linear memory.
    pub memory_bytes: usize,
    /// Longest a single call into the guest may run.
    pub deadline: Duration,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self { memory_bytes: Self::DEFAULT_MEMORY_BYTES, deadline: Self::DEFAULT_DEADLINE }
    }
}

impl GuestLimits {
    /// The guest's memory cap by default, bytes (`--guest-memory-mb` 1024).
    pub const DEFAULT_MEMORY_BYTES: usize = 1 << 30;
    /// The longest call into the guest by default (`--guest-timeout-ms`).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);
}

/// A directory the guest may see.
#[derive(Debug, Clone)]
pub struct Preopen {
    /// The host directory.
    pub host: PathBuf,
    /// Where the guest sees it (`/workspace`, `/stage/0`).
    pub guest: String,
    /// Whether the guest may write there.
    pub writable: bool,
}

/// The byte streams behind the guest's `archive-io` import during one call: `pack` writes to a sink,
/// `unpack` reads from a source, `decompress` does both.
#[derive(Default)]
struct ArchiveStream {
    source: Option<Box<dyn ArchiveSource>>,
    sink: Option<Box<dyn Write + Send>>,
}

/// What the guest's `archive-io.read` reads: chunks of at most `max` bytes, empty at the end. A source
/// that already holds its bytes in chunks hands them over without copying ([`ReadSource`] reads any
/// `Read` into a fresh buffer per chunk).
pub trait ArchiveSource: Send {
    /// The next chunk of at most `max` bytes; empty at the end of the input.
    fn next_chunk(&mut self, max: usize) -> std::io::Result<Vec<u8>>;
}

/// Any reader as an [`ArchiveSource`].
#[derive(Debug)]
pub struct ReadSource<R>(pub R);

impl<R: Read + Send> ArchiveSource for ReadSource<R> {
    fn next_chunk(&mut self, max: usize) -> std::io::Result<Vec<u8>> {
        let mut buffer = vec![0; max];
        loop {
            match self.0.read(&mut buffer) {
                Ok(n) => {
                    buffer.truncate(n);
                    return Ok(buffer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Why a call into the guest did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The guest returned an error value.
    #[error("{}", describe_guest_error(.0))]
    Guest(GuestError),
    /// The guest trapped (a bug, or a cap it hit); the instance is unusable.
    #[error("the sandboxed guest stopped: {0}")]
    Trap(String),
    /// The guest ran past its deadline for one call and was interrupted.
    #[error("the sandboxed guest stopped at its deadline of {ms} ms for one call (raise --guest-timeout-ms or S3CACHE_GUEST_TIMEOUT_MS)")]
    Deadline {
        /// The deadline, in milliseconds.
        ms: u128,
    },
    /// The guest failed after its memory cap refused to grow its memory: the cap, not the input, is
    /// what to look at. `detail` is what the guest made of the failed allocation.
    #[error("the sandboxed guest reached its memory cap of {mib} MiB (raise --guest-memory-mb or S3CACHE_GUEST_MEMORY_MB): {detail}")]
    MemoryCap {
        /// The cap, in MiB.
        mib: usize,
        /// What the guest said of the failed allocation.
        detail: String,
    },
    /// Setting up the instance failed.
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// A readable description of a guest error value.
pub fn describe_guest_error(err: &GuestError) -> String {
    match err {
        GuestError::InvalidTemplate(m) => format!("invalid key template: {m}"),
        GuestError::InvalidPattern(m) => m.clone(),
        GuestError::Io(e) => format!("{}: {}", e.path, e.message),
        GuestError::RejectedMember(r) => format!("archive member {} rejected: {}", output::escape(&r.member), r.reason),
        GuestError::CorruptStream(m) => format!("corrupt archive: {m}"),
        GuestError::LimitExceeded(m) => format!("limit exceeded: {m}"),
        GuestError::StreamFailed(m) => format!("archive transfer failed: {m}"),
        GuestError::Other(m) => m.clone(),
    }
}

/// How a guest instance reads the environment (`{{ env }}`), through the secret filter.
pub type GuestEnv = Box<dyn Fn(&str) -> Option<String> + Send>;

/// What each guest instance's store holds.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    stream: ArchiveStream,
    env: GuestEnv,
    /// Where the guest's warnings go: the reporter of the operation that started the instance.
    reporter: Reporter,
    pub(crate) files: HostFiles,
}

/// The store's limits, remembering whether the memory cap refused a growth.
struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::s3cache::guest::types::Host for GuestState {}

impl bindings::s3cache::guest::log::Host for GuestState {
    fn emit(&mut self, level: bindings::s3cache::guest::log::Level, message: String) {
        use bindings::s3cache::guest::log::Level;
        let message = output::escape(&message);
        match level {
            Level::Debug => tracing::debug!(target: "guest", "{message}"),
            Level::Info => tracing::info!(target: "guest", "{message}"),
            Level::Warn => self.reporter.warning(&message),
        }
    }
}

impl bindings::s3cache::guest::environment::Host for GuestState {
    fn get(&mut self, name: String) -> Option<String> {
        if !crate::env_vars::may_expose_to_templates(&name) {
            self.reporter.warning(&format!("the key template asked for {name}, which may hold a secret; it renders as empty"));
            return None;
        }
        (self.env)(&name).filter(|v| !v.is_empty())
    }
}

impl bindings::s3cache::guest::archive_io::Host for GuestState {
    fn write(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        match &mut self.stream.sink {
            Some(sink) => sink.write_all(&bytes).map_err(|e| e.to_string()),
            None => Err("no output stream is open".into()),
        }
    }

    fn read(&mut self, max: u32) -> Result<Vec<u8>, String> {
        let Some(source) = &mut self.stream.source else {
            return Err("no input stream is open".into());
        };
        let max = max.min(4 << 20) as usize;
        match source.next_chunk(max) {
            Ok(chunk) if chunk.len() <= max => Ok(chunk),
            Ok(chunk) => Err(format!("the archive source returned {} bytes for a read of {max}", chunk.len())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The compiled guest and everything shared by its instances.
pub struct Sandbox {
    guest: CompiledGuest,
    limits: GuestLimits,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).field("guest", &self.guest).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Loads the guest, from a compiled copy in `cache_dir` when there is a valid one.
    pub fn load(cache_dir: Option<&Path>, limits: GuestLimits) -> Result<Self> {
        Ok(Self { guest: CompiledGuest::load(cache_dir)?, limits })
    }

    /// Says the run is about to pack or unpack `bytes`; heavy work gets the optimized guest compiled
    /// in the background, for the instances created after it is ready (`crate::sandbox::compiled`).
    pub fn expect_heavy_work(&self, bytes: u64) {
        self.guest.expect_heavy_work(bytes);
    }

    /// A fresh instance that sees exactly `preopens`, of the best copy of the guest compiled so far;
    /// its warnings go to `reporter`.
    pub fn instance(&self, preopens: &[Preopen], env: GuestEnv, reporter: &Reporter) -> Result<GuestInstance> {
        let compiled = self.guest.best();
        let state = GuestState {
            wasi: wasi_context(preopens)?.build(),
            table: ResourceTable::new(),
            limits: Limits {
                inner: StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).instances(4).build(),
                memory_refused: false,
            },
            stream: ArchiveStream::default(),
            env,
            reporter: reporter.clone(),
            files: HostFiles::new(preopens),
        };
        let mut store = Store::new(&compiled.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks(self.limits.deadline));
        store.epoch_deadline_trap();
        let guest = CacheGuest::instantiate(&mut store, &compiled.component, &compiled.linker)
            .map_err(anyhow::Error::from)
            .context("instantiating the guest")?;
        Ok(GuestInstance {
            store,
            guest,
            deadline: self.limits.deadline,
            memory_bytes: self.limits.memory_bytes,
            successor: self.guest.successor(compiled.tier),
        })
    }
}

/// The WASI context every guest instance gets: no network, no environment, no stdio, blocking file
/// operations on the calling thread, and exactly `preopens`. Public so that the sandbox tests can run
/// hostile programs under the very same configuration.
pub fn wasi_context(preopens: &[Preopen]) -> Result<WasiCtxBuilder> {
    let mut wasi = WasiCtxBuilder::new();
    // Must come before the preopens: each directory captures the setting when it is added.
    wasi.allow_blocking_current_thread(true).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    for preopen in preopens {
        let perms = if preopen.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        wasi.preopened_dir(&preopen.host, &preopen.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening {} for the guest", preopen.host.display()))?;
    }
    Ok(wasi)
}

fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// One running guest.
pub struct GuestInstance {
    store: Store<GuestState>,
    guest: CacheGuest,
    deadline: Duration,
    memory_bytes: usize,
    /// Where an optimized copy of the guest will appear, for an instance of the quick one.
    successor: Option<Successor>,
}

impl std::fmt::Debug for GuestInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestInstance").finish_non_exhaustive()
    }
}

impl GuestInstance {
    /// Whether an optimized copy of the guest has been compiled since this instance was created: a
    /// long-running worker then replaces it between calls.
    pub fn outdated(&self) -> bool {
        self.successor.as_ref().is_some_and(Successor::ready)
    }

    /// Before a call: a fresh deadline, and no refused growth yet.
    fn arm_deadline(&mut self) {
        self.store.set_epoch_deadline(ticks(self.deadline));
        self.store.data_mut().limits.memory_refused = false;
    }

    /// A call's result; a failure after the memory cap refused a growth is [`SandboxError::MemoryCap`].
    fn flatten<T>(&self, result: wasmtime::Result<Result<T, GuestError>>) -> Result<T, SandboxError> {
        let failure = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => SandboxError::Guest(err),
            Err(trap) if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                SandboxError::Deadline { ms: self.deadline.as_millis() }
            }
            Err(trap) => SandboxError::Trap(format!("{:#}", anyhow::Error::from(trap))),
        };
        if !self.store.data().limits.memory_refused {
            return Err(failure);
        }
        let detail = match failure {
            SandboxError::Guest(err) => describe_guest_error(&err),
            other => other.to_string(),
        };
        Err(SandboxError::MemoryCap { mib: self.memory_bytes >> 20, detail })
    }

    /// Renders a key template and lists what the roots select.
    pub fn resolve(&mut self, template: &str, context: &TemplateContext, roots: &[Root]) -> Result<Resolution, SandboxError> {
        self.arm_deadline();
        let result = self.guest.s3cache_guest_keys().call_resolve(&mut self.store, template, context, roots);
        self.flatten(result)
    }

    /// [`Self::resolve`] for a save: what the walk lists is also `lstat`ed on another core meanwhile
    /// (`sandbox/stat_ahead.rs`), by preopen and relative path.
    pub fn resolve_for_save(
        &mut self,
        template: &str,
        context: &TemplateContext,
        roots: &[Root],
    ) -> Result<(Resolution, Lstats), SandboxError> {
        self.store.data_mut().files.start_stat_ahead();
        let resolution = self.resolve(template, context, roots);
        let lstats = self.store.data_mut().files.finish_stat_ahead();
        Ok((resolution?, lstats))
    }

    /// Writes the members as tar, compressed as zstd frames, one gzip member or not at all
    /// (`options.compression`), into `sink`.
    pub fn pack(
        &mut self,
        roots: &[Root],
        members: &[Member],
        options: PackOptions,
        sink: Box<dyn Write + Send>,
    ) -> Result<PackSummary, SandboxError> {
        self.arm_deadline();
        self.store.data_mut().stream = ArchiveStream { source: None, sink: Some(sink) };
        let result = self.guest.s3cache_guest_archive().call_pack(&mut self.store, roots, members, options);
        let result = self.flatten(result);
        self.store.data_mut().stream = ArchiveStream::default();
        result
    }

    /// Extracts the tar, compressed as `compression`, read from `source` under the roots' staging preopens.
    pub fn unpack(
        &mut self,
        roots: &[Root],
        compression: Compression,
        limits: UnpackLimits,
        source: Box<dyn ArchiveSource>,
    ) -> Result<UnpackReport, SandboxError> {
        self.arm_deadline();
        self.store.data_mut().stream = ArchiveStream { source: Some(source), sink: None };
        let result = self.guest.s3cache_guest_archive().call_unpack(&mut self.store, roots, compression, limits);
        let result = self.flatten(result);
        self.store.data_mut().stream = ArchiveStream::default();
        result
    }

    /// Decompresses one part of an archive (zstd frames or gzip members) read from `source` into
    /// `sink`; returns the decompressed length.
    pub fn decompress(
        &mut self,
        compression: Compression,
        limits: UnpackLimits,
        source: Box<dyn ArchiveSource>,
        sink: Box<dyn Write + Send>,
    ) -> Result<u64, SandboxError> {
        self.arm_deadline();
        self.store.data_mut().stream = ArchiveStream { source: Some(source), sink: Some(sink) };
        let result = self.guest.s3cache_guest_archive().call_decompress(&mut self.store, compression, limits);
        let result = self.flatten(result);
        self.store.data_mut().stream = ArchiveStream::default();
        result
    }
}
