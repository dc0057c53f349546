#!/usr/bin/env python3
"""Side-by-side benchmark: s3cache against the native tar + zstd + awscli pipeline, same server.

Runs in one invocation, on tmpfs (/dev/shm) so the numbers measure the tools rather than the disk:
  - generates a deterministic workload (fixed seed);
  - starts s3s-fs on loopback (the strict SigV4 server the tests use);
  - times, per workload, our save and restore and the baselines
      B1 save:    tar --posix -cf - | zstd -T0 -3 > file; aws s3 cp file s3://...
      B2 restore: aws s3 cp s3://... file; zstd -d | tar -x
  - prints medians of several runs and the ratios ours / baseline (below 1.0 means we are faster).

Usage: bench/bench.py [--files N] [--runs R]     (S3CACHE_BENCH_FILES overrides the default size)
Never run as a timed test; CI only runs a tiny version to check that it works.
"""
import argparse
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "function return const module exports require var this value object string length index array".split()
ACCESS, SECRET, BUCKET = "AKIDBENCH", "bench-secret-key", "bench"


def generate_node_modules(root, files, seed=1):
    """W1-like: packages of small JS-like text files, log-normal sizes (median ~1.5 KiB)."""
    rng = random.Random(seed)
    per_package = 50
    for i in range(files):
        package, index = divmod(i, per_package)
        directory = os.path.join(root, "node_modules", f"pkg{package}", "lib")
        os.makedirs(directory, exist_ok=True)
        size = int(rng.lognormvariate(7.3, 1.0))
        text = " ".join(rng.choice(WORDS) for _ in range(size // 6 + 1))[:size]
        with open(os.path.join(directory, f"file{index}.js"), "w") as f:
            f.write(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(command, env, cwd):
    """Runs a shell command; returns (wall seconds, cpu seconds of children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=int(os.environ.get("S3CACHE_BENCH_FILES", "20000")))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "s3cache"))
    args = parser.parse_args()

    base = tempfile.mkdtemp(prefix="s3cache-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    port = free_port()
    os.makedirs(os.path.join(base, "s3", BUCKET))
    server = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(port), "--access-key", ACCESS, "--secret-key", SECRET, os.path.join(base, "s3")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                   AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, S3CACHE_STORE=f"s3://{BUCKET}/ours",
                   S3CACHE_CACHE_DIR=os.path.join(base, "s3cache-home"))
        work = os.path.join(base, "work")
        os.makedirs(work)
        generate_node_modules(work, args.files)
        aws = f"aws --endpoint-url {endpoint} s3 cp --only-show-errors"
        archive = os.path.join(base, "cache.tzst")
        binary = args.binary
        subprocess.run([binary, "key", "--template", "warm-up"], env=env, check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

        results = {}

        def record(name, sample):
            results.setdefault(name, []).append(sample)

        for run in range(args.runs):
            key = f"w1-{run}"
            record("save ours", timed(f"{binary} save --key {key} --path node_modules", env, work))
            record("save tar|zstd", timed(f"tar --posix -cf - node_modules | zstd -T0 -3 -q -f -o {archive}", env, work))
            os.remove(archive)
            record("save B1", timed(f"tar --posix -cf - node_modules | zstd -T0 -3 -q -f -o {archive} && {aws} {archive} s3://{BUCKET}/native/{key}.tzst", env, work))
            os.remove(archive)
            shutil.move(os.path.join(work, "node_modules"), os.path.join(base, "original"))
            record("restore ours", timed(f"{binary} restore --key {key} --path node_modules", env, work))
            shutil.rmtree(os.path.join(work, "node_modules"))
            record("restore B2", timed(f"{aws} s3://{BUCKET}/native/{key}.tzst {archive} && zstd -dc {archive} | tar -xf -", env, work))
            shutil.rmtree(os.path.join(work, "node_modules"))
            record("restore zstd|tar", timed(f"zstd -dc {archive} | tar -xf - && rm {archive}", env, work))
            shutil.rmtree(os.path.join(work, "node_modules"))
            shutil.move(os.path.join(base, "original"), os.path.join(work, "node_modules"))

        print(f"workload W1-like: {args.files} files, median of {args.runs} runs, tmpfs, s3s-fs on loopback")
        print(f"{'phase':<18}{'wall s':>9}{'cpu s':>9}")
        medians = {}
        for name, samples in results.items():
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            medians[name] = wall
            print(f"{name:<18}{wall:>9.3f}{cpu:>9.3f}")
        print(f"ratio save    ours/B1 = {medians['save ours'] / medians['save B1']:.2f}   ours/(tar|zstd, no upload) = {medians['save ours'] / medians['save tar|zstd']:.2f}")
        print(f"ratio restore ours/B2 = {medians['restore ours'] / medians['restore B2']:.2f}   ours/(zstd|tar, no download) = {medians['restore ours'] / medians['restore zstd|tar']:.2f}")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
