# shellcheck shell=bash
# Shared settings for the project's scripts: where tools and build caches live.
# Sourced, not run.

# Everything the scripts install or build outside the work tree lives here, so that a fresh clone on the
# same machine (CI's, for one) reuses it instead of rebuilding wasmtime or s3s-fs from cold.
S3CACHE_DEV_CACHE="${S3CACHE_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/s3cache-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$S3CACHE_DEV_CACHE/target}"
WASI_SYSROOT_DIR="$S3CACHE_DEV_CACHE/wasi-sysroot"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt-get install, updating the package lists once per run when needed.
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install these yourself: $*"
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -qq >&2 || die "apt-get update failed"
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}
