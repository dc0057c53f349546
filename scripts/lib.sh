# shellcheck shell=bash
# Shared settings for the project's scripts: where tools and build caches live, and how the scripts
# install what they need. Sourced, not run.

# Everything the scripts install or build outside the work tree lives here, so that a fresh clone on the
# same machine (CI's, for one) reuses it instead of rebuilding wasmtime or s3s-fs from cold.
S3CACHE_DEV_CACHE="${S3CACHE_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/s3cache-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$S3CACHE_DEV_CACHE/target}"
WASI_SYSROOT_DIR="$S3CACHE_DEV_CACHE/wasi-sysroot"
PYTHON_TOOLS_DIR="$S3CACHE_DEV_CACHE/venv"
ESCAPE_PROBE="$S3CACHE_DEV_CACHE/escape-probe.wasm"   # the sandbox tests' hostile program (build-guest --probe)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt-get update, once per run.
apt_update_once() {
  [ -n "${_APT_UPDATED:-}" ] && return 0
  apt-get update -qq >&2 || die "apt-get update failed"
  _APT_UPDATED=1
}

# apt-get install, updating the package lists once per run when needed.
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install these yourself: $*"
  [ "$(id -u)" = 0 ] || die "installing Debian packages needs root; run: sudo apt-get install $*"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

# True when version $1 is $2 or newer (1.96.0 >= 1.95).
version_at_least() { [ "$(printf '%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The minimum Rust version of the workspace (Cargo.toml's rust-version).
rust_min_version() { sed -n 's/^rust-version = "\(.*\)"/\1/p' "$REPO_ROOT/Cargo.toml"; }

# What building the host needs beyond Rust: cargo links through `cc`, and ring and zstd-sys compile C.
require_build_tools() {
  local need have
  need="$(rust_min_version)"
  command -v cargo >/dev/null || die "cargo not found: install Rust $need or newer (rustup), then run this again"
  have="$(rustc --version | cut -d' ' -f2)"
  version_at_least "$have" "$need" || die "rustc $have is too old: s3cache needs Rust $need or newer (rustup update)"
  if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    log "adding rustfmt and clippy (scripts/test checks the format and the lints)"
    rustup component add rustfmt clippy >&2
  fi
  if ! command -v cc >/dev/null; then
    log "installing a C compiler (gcc): cargo links through cc, and ring and zstd-sys compile C code"
    command -v apt-get >/dev/null || die "no C compiler (cc) found: install gcc or clang, then run this again"
    apt_install gcc libc6-dev
  fi
}

# The one build of the host that the scripts share (scripts/s3cache, scripts/test), so that wasmtime
# is built once into $CARGO_TARGET_DIR and every later build is incremental.
build_host() {
  require_build_tools
  (cd "$REPO_ROOT" && cargo build --locked --release --workspace --bins "$@")
}

# The Python test tools pinned in tests/requirements.txt, in a virtual environment owned by the project
# (Debian's own Python refuses `pip install`, PEP 668); reused while that file is unchanged. Puts the
# environment's bin first on PATH, so the tests, the benchmark and the workflows run its tools.
use_python_tools() {
  local venv="$PYTHON_TOOLS_DIR" requirements="$REPO_ROOT/tests/requirements.txt" stamp want
  stamp="$venv/requirements.sha256"
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if ! "$venv/bin/python3" -c '' 2>/dev/null; then
      command -v python3 >/dev/null || apt_install python3
      rm -rf "$venv"
      if ! python3 -m venv "$venv" >/dev/null 2>&1; then   # Debian splits ensurepip out
        rm -rf "$venv"
        apt_install python3-venv
        python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
      fi
    fi
    log "installing the Python test tools into $venv (tests/requirements.txt)"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2 \
      || die "pip install -r tests/requirements.txt failed"
    echo "$want" >"$stamp"
  fi
  export PATH="$venv/bin:$PATH"
}
