#!/usr/bin/env python3
"""A second host for the s3cache guest, in Python with wasmtime-py: the model for a Python-based
runner that embeds the guest (see docs/embedding.md).

    s3cache_host.py [--store DIR] [--cache-dir DIR] key --template T
    s3cache_host.py [--store DIR] save --key K --path P [--path P ...] [--format zstd|gzip|tar]
    s3cache_host.py [--store DIR] restore --key K --path P [--path P ...]

It runs in the current directory (the workspace) against s3cache's file store (default: the store the
`s3cache` binary uses without settings, `$S3CACHE_CACHE_DIR/store`), so entries it saves restore with
`s3cache restore`, and the reverse. Results are one JSON line on stdout. Exit codes: 0 done (or
nothing to do), 1 a miss or refusal, whose JSON names the guest's error case
(`{"miss": ..., "error": "rejected-member", "member": ..., "reason": ...}`), 2 bad usage.
"""

import argparse
import json
import os
import sys
import time

from cache import Cache, Miss
from guest import Guest


def default_cache_dir():
    return os.environ.get("S3CACHE_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "s3cache")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="the file store directory")
    parser.add_argument("--cache-dir", help="where the compiled guest is kept")
    parser.add_argument("--slow-bytes", action="store_true", help="convert list<u8> element by element, as wasmtime-py does by default")
    parser.add_argument("--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("key")
    key.add_argument("--template", required=True)
    for name in ("save", "restore"):
        command = commands.add_parser(name)
        command.add_argument("--key", required=True)
        command.add_argument("--path", action="append", required=True)
        if name == "save":
            command.add_argument("--format", choices=["zstd", "gzip", "tar"], default="zstd")
            command.add_argument("--compression-level", type=int)
    args = parser.parse_args(argv)

    cache_dir = args.cache_dir or default_cache_dir()
    started = time.monotonic()
    guest = Guest(cache_dir=cache_dir, fast_bytes=not args.slow_bytes, verbose=args.verbose)
    cache = Cache(guest, os.getcwd(), args.store or os.path.join(cache_dir, "store"))
    try:
        if args.command == "key":
            print(cache.key(args.template))
            return 0
        if args.command == "save":
            result = cache.save(args.key, args.path, args.format, args.compression_level)
        else:
            result = cache.restore(args.key, args.path)
    except Miss as miss:
        print(json.dumps({"miss": args.key, "error": miss.case, **miss.detail}))
        return 1
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
