//! The compiled guest, in two tiers: Winch, which compiles the component in a fraction of the time
//! but generates slower code, and Cranelift, which optimizes. Both are cached on disk, and a run
//! uses the best copy it has.
//!
//! Measured on the project's 2-core VM (the 2 MB component): Cranelift compiles it in about 2.5 s of
//! CPU (1.3–1.5 s wall with parallel compilation), Winch in about 0.35 s; Winch's code takes about
//! 1.5× the CPU of Cranelift's for packing and unpacking. So a run that finds no Cranelift copy
//! starts at once on Winch's (compiled, or loaded from the cache), which is all that keys, misses and
//! small entries need. A run that is about to pack or unpack [`HEAVY_BYTES`] or more compiles the
//! Cranelift copy in the background ([`CompiledGuest::expect_heavy_work`]); guest instances created
//! after it is ready use it, and the process waits for it before exiting
//! ([`CompiledGuest::wait`]), so that it is cached and the next run starts optimized. Where Winch
//! cannot compile the guest (it lacks SIMD on some architectures), the run compiles with Cranelift at
//! once, as before.
//!
//! A cached copy is named by a hash of the component, the engine's compatibility hash (wasmtime
//! version, settings, CPU features) and the tier, so a stale artifact is never loaded. Only files
//! this module wrote are deserialized; a file that fails to load is replaced.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Strategy};

use crate::sandbox::bindings::CacheGuest;
use crate::sandbox::{GUEST_COMPONENT, GuestState};

/// Work (archive or content bytes) from which a run compiles the optimized guest.
pub const HEAVY_BYTES: u64 = 16 << 20;
/// How often an engine's epoch advances; guest deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

/// Which compiler made a copy of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch: quick to compile, slower code.
    Quick,
    /// Cranelift: optimized.
    Optimized,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Quick => "winch",
            Tier::Optimized => "cranelift",
        }
    }
}

/// One compiled copy of the guest: its engine, component and linker.
pub(crate) struct Compiled {
    pub(crate) engine: Engine,
    pub(crate) component: Component,
    pub(crate) linker: Linker<GuestState>,
    pub(crate) tier: Tier,
}

/// The engine that compiles and runs `tier`'s copy.
fn engine(tier: Tier) -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if tier == Tier::Quick {
        config.strategy(Strategy::Winch);
    }
    Engine::new(&config).map_err(anyhow::Error::from).context("creating the wasmtime engine")
}

impl Compiled {
    /// Compiles the guest for `tier` (or loads the copy cached in `cache_dir`).
    fn load(tier: Tier, cache_dir: Option<&Path>) -> Result<Self> {
        Self::with_engine(engine(tier)?, tier, cache_dir)
    }

    fn with_engine(engine: Engine, tier: Tier, cache_dir: Option<&Path>) -> Result<Self> {
        let component = load_component(&engine, tier, cache_dir)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from).context("linking WASI")?;
        CacheGuest::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)
            .context("linking the guest's imports")?;
        let ticker = engine.weak();
        std::thread::spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
        Ok(Self { engine, component, linker, tier })
    }

    /// Only the cached copy for `tier`, if there is one.
    fn cached(tier: Tier, cache_dir: &Path) -> Option<Self> {
        let engine = engine(tier).ok()?;
        if !cached_path(&engine, tier, cache_dir).exists() {
            return None;
        }
        Self::with_engine(engine, tier, Some(cache_dir)).ok()
    }
}

/// Where the optimized copy appears once compiled in the background.
#[derive(Clone)]
pub(crate) struct Successor(Arc<OnceLock<Compiled>>);

impl Successor {
    pub(crate) fn ready(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The guest as this process has it: the copy it started with, and the optimized one once compiled
/// in the background.
pub struct CompiledGuest {
    first: Compiled,
    optimized: Arc<OnceLock<Compiled>>,
    background: Mutex<Option<JoinHandle<()>>>,
    cache_dir: Option<PathBuf>,
}

impl std::fmt::Debug for CompiledGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledGuest")
            .field("first", &self.first.tier)
            .field("optimized", &self.optimized.get().is_some())
            .finish_non_exhaustive()
    }
}

impl CompiledGuest {
    /// The cached optimized copy; else the quick one (cached or compiled now); else, where Winch
    /// cannot compile the guest, the optimized one compiled now. Without a cache directory, the
    /// optimized copy is compiled now (embedders that want no files get the fast code).
    pub fn load(cache_dir: Option<&Path>) -> Result<Self> {
        let first = match cache_dir {
            None => Compiled::load(Tier::Optimized, None)?,
            Some(dir) => match Compiled::cached(Tier::Optimized, dir) {
                Some(optimized) => optimized,
                None => Compiled::load(Tier::Quick, Some(dir)).or_else(|err| {
                    tracing::debug!(error = %format!("{err:#}"), "Winch cannot compile the guest here; compiling with Cranelift");
                    Compiled::load(Tier::Optimized, Some(dir))
                })?,
            },
        };
        tracing::debug!(tier = first.tier.name(), "guest loaded");
        Ok(Self { first, optimized: Arc::default(), background: Mutex::new(None), cache_dir: cache_dir.map(Path::to_path_buf) })
    }

    /// The best copy compiled so far.
    pub(crate) fn best(&self) -> &Compiled {
        self.optimized.get().unwrap_or(&self.first)
    }

    /// For an instance of `tier`: where its replacement will appear, if it may get one.
    pub(crate) fn successor(&self, tier: Tier) -> Option<Successor> {
        (tier == Tier::Quick).then(|| Successor(self.optimized.clone()))
    }

    /// Says the run is about to pack or unpack `bytes`: from [`HEAVY_BYTES`] on, the optimized copy is
    /// compiled in the background unless this process has it (or is compiling it) already.
    pub fn expect_heavy_work(&self, bytes: u64) {
        if bytes < HEAVY_BYTES || self.first.tier == Tier::Optimized {
            return;
        }
        let mut background = self.background.lock().expect("background lock");
        if background.is_some() {
            return;
        }
        let (optimized, cache_dir) = (self.optimized.clone(), self.cache_dir.clone());
        *background = Some(std::thread::spawn(move || match Compiled::load(Tier::Optimized, cache_dir.as_deref()) {
            Ok(compiled) => {
                tracing::debug!("optimized guest ready");
                let _ = optimized.set(compiled);
            }
            Err(err) => tracing::debug!(error = %format!("{err:#}"), "compiling the optimized guest failed; staying on Winch"),
        }));
    }

    /// Waits for a background compilation to finish (and be cached); dropping the guest does too.
    pub fn wait(&self) {
        let handle = self.background.lock().expect("background lock").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for CompiledGuest {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Where the compiled copy for `engine` and `tier` is cached.
fn cached_path(engine: &Engine, tier: Tier, cache_dir: &Path) -> PathBuf {
    // The component's own hash comes from the build (build.rs): hashing 2 MB costs a warm run 2 ms.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env!("S3CACHE_GUEST_COMPONENT_HASH").hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    cache_dir.join(format!("guest-{}-{:016x}.cwasm", tier.name(), hasher.finish()))
}

/// Loads the compiled guest for `tier` from `cache_dir`, or compiles it and saves the result there.
fn load_component(engine: &Engine, tier: Tier, cache_dir: Option<&Path>) -> Result<Component> {
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, GUEST_COMPONENT).map_err(anyhow::Error::from).context("compiling the guest");
    };
    let path = cached_path(engine, tier, cache_dir);
    if path.exists() {
        // SAFETY: the file was produced by `Component::serialize` below, with this engine's
        // compatibility hash in its name; wasmtime re-checks the header and version when loading.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(err) => tracing::debug!(path = %path.display(), error = %err, "recompiling the guest"),
        }
    }
    let component = Component::new(engine, GUEST_COMPONENT).map_err(anyhow::Error::from).context("compiling the guest")?;
    if let Err(err) = save_compiled(&component, &path) {
        tracing::debug!(path = %path.display(), error = %err, "could not cache the compiled guest");
    }
    Ok(component)
}

fn save_compiled(component: &Component, path: &Path) -> Result<()> {
    let bytes = component.serialize()?;
    let dir = path.parent().context("cache path has a parent")?;
    fs::create_dir_all(dir)?;
    let temp = dir.join(crate::unique_name::unique_name(".guest-tmp-"));
    fs::write(&temp, bytes)?;
    fs::rename(&temp, path)?;
    Ok(())
}
