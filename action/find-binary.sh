#!/usr/bin/env bash
# Finds the s3cache binary for the composite actions (restore/, save/) without building it:
#   1. the `binary` input (INPUT_BINARY), when given;
#   2. `s3cache` on PATH;
#   3. the release binary for this runner (RUNNER_OS/RUNNER_ARCH), downloaded once per job into
#      RUNNER_TEMP and verified against the sha256 pinned in action/checksums.txt.
# Writes `path=<binary>` to GITHUB_OUTPUT.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's/^version: //p' "$here/checksums.txt")"

if [ -n "${INPUT_BINARY:-}" ]; then
  bin="$INPUT_BINARY"
elif command -v s3cache >/dev/null 2>&1; then
  bin="$(command -v s3cache)"
else
  case "${RUNNER_OS:-}-${RUNNER_ARCH:-}" in
    Linux-X64) asset=s3cache-x86_64-unknown-linux-gnu ;;
    Linux-ARM64) asset=s3cache-aarch64-unknown-linux-gnu ;;
    macOS-X64) asset=s3cache-x86_64-apple-darwin ;;
    macOS-ARM64) asset=s3cache-aarch64-apple-darwin ;;
    Windows-X64) asset=s3cache-x86_64-pc-windows-msvc.exe ;;
    *) echo "::error::s3cache has no release binary for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; pass one with the \`binary\` input" >&2; exit 1 ;;
  esac
  expected="$(awk -v a="$asset" '$2 == a { print $1 }' "$here/checksums.txt")"
  if [ -z "$expected" ]; then
    echo "::error::no sha256 is pinned for $asset in s3cache $version; pass a binary with the \`binary\` input or put s3cache on PATH" >&2
    exit 1
  fi
  bin="${RUNNER_TEMP:-/tmp}/s3cache-$version/$asset"
  if [ ! -x "$bin" ]; then
    mkdir -p "$(dirname "$bin")"
    curl -fsSL --retry 3 -o "$bin.download" "https://github.com/s3cache/s3cache/releases/download/v$version/$asset"
    actual="$( (sha256sum "$bin.download" 2>/dev/null || shasum -a 256 "$bin.download") | awk '{ print $1 }')"
    if [ "$actual" != "$expected" ]; then
      rm -f "$bin.download"
      echo "::error::$asset has sha256 $actual, but $expected is pinned; refusing to run it" >&2
      exit 1
    fi
    chmod +x "$bin.download"
    mv "$bin.download" "$bin"
  fi
fi
"$bin" --version >&2
echo "path=$bin" >> "$GITHUB_OUTPUT"
