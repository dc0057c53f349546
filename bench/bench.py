#!/usr/bin/env python3
"""Side-by-side benchmark: s3cache against the native tar + zstd + awscli pipeline, one invocation,
one local S3 server (s3s-fs on loopback, the strict server the tests use), files on tmpfs so that the
numbers measure the tools, not the disk.

Workloads (deterministic, fixed seed, sized by --scale or S3CACHE_BENCH_SCALE; 1.0 is full size):
  W1 node_modules-like: 60k small JS-like files (log-normal sizes), ~1% symlinks in .bin/
  W2 Rust target/-like: 3k small files (.d, .rmeta, fingerprints) plus 5 large binaries
  W3 one large incompressible file (2 GiB at full size)
  W4 a tiny cache: 100 files, ~1 MB (fixed overhead: warm, and cold with no compiled guest)
  W5 key computation: hashFiles over the W1 tree
  W6 a real dependency tree's shape (npm/pip): 20k small source and metadata files plus native
     binaries that compress poorly (one of 100 MB, two of 20 MB at full size)
Baselines (same server, same data):
  B1 save:    tar --posix -cf - DIR | zstd -T0 -3 -o file; aws s3 cp file s3://...
  B2 restore: aws s3 cp s3://... file; zstd -d -c file | tar -xf -
  B3 pipelined native: tar | zstd -T0 -3 | aws s3 cp - s3://...   and   aws s3 cp s3://... - | zstd -d | tar -x
  B4 floors: read+walk (tar -cf - | cat >/dev/null), zstd -d only, extract only (tar -xf plain.tar),
             network (aws s3 cp s3://... - > /dev/null)
  B5 hashing: find | sort | xargs sha256sum
  gzip (W1, W2, W3, W6, unless --no-gzip): s3cache --format gzip --compression-level 6 against the same pipelines
     with gzip at its default level 6, single-threaded (B6) and with pigz on every core (B7, skipped
     with a note when pigz is not installed):
  B6 save:    tar --posix -cf - DIR | gzip -6 -c | aws s3 cp - s3://...
     restore: aws s3 cp s3://... - | gzip -d -c | tar -xf -
  B7 the same with pigz -6 (restore: pigz -d, whose inflate is single-threaded but reads, writes and
     checks CRCs on other threads)
     floors: tar -cf - DIR | gzip -6 > file, and gzip -d -c file > /dev/null
SV (s3cache serve): a prepared archive of random bytes (1 GiB at full size) uploaded and downloaded
     through `s3cache serve` with the cache protocol's v2 calls in plain HTTP (bench/gha_client.py:
     64 MiB blocks, 8 in flight, as @actions/cache sends them), against the same bytes sent straight
     to the store with `aws s3 cp` (goal: at least 0.9x its throughput), and the server's peak RSS
     (VmHWM) over the runs (goal: at most 128 MB).
W1/W2/W6 file: s3cache save and restore with a file:// store on the same tmpfs, against
     tar --posix | zstd -T0 -3 > file and zstd -d -c file | tar -x: no network and no server on
     either side, so the ratio is what the sandbox costs (goal: at most 1.0x both ways), and W6's
     CPU time / wall shows whether s3cache keeps both cores busy (the CPU goal). With s3s-fs on the
     same two cores the server's own CPU is reported beside ours.
Metrics: wall and CPU seconds (median of --runs), peak RSS (MB), the server's CPU seconds during
each command, temporary archive bytes on disk, compressed size against zstd -3, and the HTTP
requests s3cache sent (from its --summary-json).
Ratios are ours / baseline: below 1.0 means s3cache is faster. The report ends with every row of
the goal tables of issues 13 and 25 that the run measured (save and restore against B1/B2 and B3 for
W1, W2, W6; the sandbox's cost on a file:// store for W1, W2, W6; W4 cold start and warm restore;
peak RSS of W3 and W6; W6's CPU time / wall on the file:// store; compressed size), each met or not,
plus reference rows (W5, W3 throughput, gzip).
Before measuring, one save of 17 MiB leaves the optimized (Cranelift) guest cached, as on any machine
after its first heavy run; W4 cold deletes every compiled copy first.

Usage: bench/bench.py [--scale S] [--runs R] [--workloads W1,W2,...] [--no-gzip] [--file-store-only]
Never run as a timed test; CI runs a tiny scale once only to check that it works.
"""
import argparse
import json
import os
import random
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
# gzip's own default level, used by s3cache --format gzip and both gzip baselines.
GZIP_LEVEL = 6


def text(rng, size):
    return " ".join(rng.choice(WORDS) for _ in range(size // 6 + 1))[:size]


def gen_w1(root, scale):
    rng = random.Random(1)
    files = max(100, int(60000 * scale))
    base = os.path.join(root, "node_modules")
    os.makedirs(os.path.join(base, ".bin"))
    for i in range(files):
        package, index = divmod(i, 40)
        directory = os.path.join(base, f"pkg{package}", "lib" if index % 4 else "dist")
        os.makedirs(directory, exist_ok=True)
        size = min(int(rng.lognormvariate(7.3, 1.0)), 200_000)
        with open(os.path.join(directory, f"file{index}.js"), "w") as f:
            f.write(text(rng, size))
        if i % 100 == 0:
            os.symlink(f"../pkg{package}/{'lib' if index % 4 else 'dist'}/file{index}.js", os.path.join(base, ".bin", f"tool{i}"))
    return "node_modules"


def gen_w2(root, scale):
    rng = random.Random(2)
    base = os.path.join(root, "target", "debug")
    for i in range(max(50, int(3000 * scale))):
        directory = os.path.join(base, "deps" if i % 3 else f".fingerprint/crate{i % 300}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"item{i}.{'d' if i % 2 else 'rmeta'}"), "wb") as f:
            f.write(text(rng, rng.randint(200, 20000)).encode())
    for i in range(5):
        # Binaries: half structured (compressible), half noise.
        size = max(1 << 20, int(60_000_000 * scale))
        with open(os.path.join(base, f"bin{i}"), "wb") as f:
            f.write((text(rng, 4096).encode() * (size // 8192 + 1))[: size // 2])
            f.write(os.urandom(size // 2))
        os.chmod(os.path.join(base, f"bin{i}"), 0o755)
    return "target"


def gen_w3(root, scale):
    size = max(4 << 20, int((2 << 30) * scale))
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, 8 << 20)
            f.write(os.urandom(chunk))
            remaining -= chunk
    return "blob.bin"


def gen_w6(root, scale):
    rng = random.Random(6)
    base = os.path.join(root, "node_modules")
    for i in range(max(200, int(20000 * scale))):
        package, index = divmod(i, 25)
        directory = os.path.join(base, f"@scope{package % 40}", f"pkg{package}", ("lib", "dist", "types", ".")[index % 4])
        os.makedirs(directory, exist_ok=True)
        name, size = [(f"f{index}.js", int(rng.lognormvariate(7.0, 1.1))), (f"f{index}.d.ts", int(rng.lognormvariate(6.0, 1.0))),
                      ("package.json", rng.randint(400, 3000)), (f"README{index}.md", int(rng.lognormvariate(7.5, 0.8)))][index % 4]
        with open(os.path.join(directory, name), "w") as f:
            f.write(text(rng, min(size, 300_000)))
    # Native binaries (esbuild, swc, sharp's libvips): mostly code that zstd -3 shrinks little.
    for relative, full_size in (("@esbuild/linux-x64/bin/esbuild", 100_000_000), ("@swc/core-linux-x64-gnu/swc.node", 20_000_000),
                                ("sharp/vendor/lib/libvips-cpp.so", 20_000_000)):
        path = os.path.join(base, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        size = max(1 << 20, int(full_size * scale))
        with open(path, "wb") as f:
            written = 0
            while written < size:
                chunk = min(size - written, 4 << 20)
                # Three quarters noise, a quarter repeated structure: about 1.3x under zstd -3.
                f.write(rng.randbytes(chunk * 3 // 4) + (text(rng, 2048).encode() * (chunk // 8192 + 1))[: chunk - chunk * 3 // 4])
                written += chunk
        os.chmod(path, 0o755)
    return "node_modules"


def gen_w4(root, scale):
    rng = random.Random(4)
    os.makedirs(os.path.join(root, "tiny"))
    for i in range(100):
        with open(os.path.join(root, "tiny", f"f{i}.txt"), "w") as f:
            f.write(text(rng, 10_000))
    return "tiny"


class Bench:
    def __init__(self, args, base):
        self.args, self.base = args, base
        self.port = free_port()
        os.makedirs(os.path.join(base, "s3", BUCKET))
        self.server = subprocess.Popen(
            ["s3s-fs", "--host", "127.0.0.1", "--port", str(self.port), "--access-key", ACCESS, "--secret-key", SECRET, os.path.join(base, "s3")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{self.port}"
        self.cache_home = os.path.join(base, "s3cache-home")
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                        AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, S3CACHE_STORE=f"s3://{BUCKET}/ours",
                        S3CACHE_CACHE_DIR=self.cache_home)
        self.aws = f"aws --endpoint-url {endpoint} s3 cp --only-show-errors"
        self.results = {}
        self.facts = {}

    def run(self, name, command, cwd, env=None):
        """Times a shell command under /usr/bin/time (with `env`, or the server's environment);
        records wall, CPU, peak RSS and the server's CPU meanwhile."""
        stats = os.path.join(self.base, "time.out")
        server_before = self.server_cpu()
        start = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", stats, "sh", "-c", command], check=True, env=env or self.env, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        user, system, rss_kb = open(stats).read().split()[-3:]
        self.results.setdefault(name, []).append((wall, float(user) + float(system), int(rss_kb) / 1024, self.server_cpu() - server_before))

    def server_cpu(self):
        """CPU seconds s3s-fs has used so far (user + system, from /proc)."""
        fields = open(f"/proc/{self.server.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def clear_store(self):
        """Deletes every object the server holds (files on tmpfs, so RAM): at full size one run of W3
        stores six 2 GiB archives, and three runs' worth would not fit in memory."""
        bucket = os.path.join(self.base, "s3", BUCKET)
        for name in os.listdir(bucket):
            remove(os.path.join(bucket, name))

    def median(self, name, index=0):
        return statistics.median(sample[index] for sample in self.results[name])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(b, workload, make):
    """Makes the workload's tree in its own directory; returns the directory and the tree's path in it."""
    work = os.path.join(b.base, workload)
    os.makedirs(work)
    return work, make(work, b.args.scale)


def transfer_workload(b, workload, make, binary):
    """Save and restore one tree with s3cache and the baselines."""
    work, path = generate(b, workload, make)
    archive = os.path.join(b.base, "cache.tzst")
    temp_bytes = 0
    for run in range(b.args.runs):
        key = f"{workload}-{run}"
        summary = os.path.join(b.base, "summary.json")
        b.run(f"{workload} save ours", f"{binary} save --key {key} --path {path} --summary-json {summary}", work)
        saved = json.load(open(summary))
        b.run(f"{workload} save B1", f"tar --posix -cf - {path} | zstd -T0 -3 -q -f -o {archive} && {b.aws} {archive} s3://{BUCKET}/native/{key}.tzst", work)
        temp_bytes = os.path.getsize(archive)
        b.facts[workload] = {"ours bytes": saved["bytes"], "zstd -3 bytes": temp_bytes, "save requests": saved["http_requests"]}
        os.remove(archive)
        b.run(f"{workload} save B3", f"tar --posix -cf - {path} | zstd -T0 -3 -q -c | {b.aws} - s3://{BUCKET}/piped/{key}.tzst", work)
        b.run(f"{workload} floor read", f"tar -cf - {path} | cat > /dev/null", work)
        shutil.move(os.path.join(work, path), os.path.join(b.base, "original"))
        b.run(f"{workload} restore ours", f"{binary} restore --key {key} --path {path} --summary-json {summary}", work)
        b.facts[workload]["restore requests"] = json.load(open(summary))["http_requests"]
        remove(os.path.join(work, path))
        b.run(f"{workload} restore B2", f"{b.aws} s3://{BUCKET}/native/{key}.tzst {archive} && zstd -d -c -q {archive} | tar -xf -", work)
        remove(os.path.join(work, path))
        b.run(f"{workload} restore B3", f"{b.aws} s3://{BUCKET}/piped/{key}.tzst - | zstd -d -q -c | tar -xf -", work)
        remove(os.path.join(work, path))
        b.run(f"{workload} floor network", f"{b.aws} s3://{BUCKET}/native/{key}.tzst - > /dev/null", work)
        b.run(f"{workload} floor zstd -d", f"zstd -d -q -c {archive} > /dev/null", work)
        subprocess.run(f"zstd -d -q -c {archive} > {archive}.tar", shell=True, check=True)
        b.run(f"{workload} floor extract", f"tar -xf {archive}.tar", work)
        remove(os.path.join(work, path))
        os.remove(f"{archive}.tar")
        os.remove(archive)
        shutil.move(os.path.join(b.base, "original"), os.path.join(work, path))
        b.clear_store()
        if b.args.gzip:
            gzip_runs(b, workload, key, path, work, binary)
            b.clear_store()
    b.results[f"{workload} temp bytes B1/B2"] = [(temp_bytes, 0, 0)]
    return work, path


def file_store_runs(b, workload, work, path, binary):
    """One tree saved to and restored from a file:// store on tmpfs, against the native pipeline to a
    file: `tar --posix -cf - DIR | zstd -T0 -3 -o FILE` and `zstd -dc FILE | tar -xf -`. The ratio of
    the two is what the sandbox costs, with no network in either."""
    store = os.path.join(b.base, "file-store")
    archive = os.path.join(b.base, "cache.tzst")
    env = dict(b.env, S3CACHE_STORE=f"file://{store}")
    for run in range(b.args.runs):
        b.run(f"{workload} file save ours", f"{binary} save --key file-{run} --path {path}", work, env)
        b.run(f"{workload} file save native", f"tar --posix -cf - {path} | zstd -T0 -3 -q -f -o {archive}", work)
        if workload not in b.facts:  # --file-store-only: the sizes from here (the entry is the store's largest file)
            stored = max(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(store) for f in files)
            b.facts[workload] = {"ours bytes": stored, "zstd -3 bytes": os.path.getsize(archive)}
        shutil.move(os.path.join(work, path), os.path.join(b.base, "original"))
        b.run(f"{workload} file restore ours", f"{binary} restore --key file-{run} --path {path}", work, env)
        remove(os.path.join(work, path))
        b.run(f"{workload} file restore native", f"zstd -d -c -q {archive} | tar -xf -", work)
        remove(os.path.join(work, path))
        shutil.move(os.path.join(b.base, "original"), os.path.join(work, path))
        os.remove(archive)
        remove(store)


def gzip_runs(b, workload, key, path, work, binary):
    """s3cache --format gzip against tar | gzip (B6) and tar | pigz (B7), streamed to and from the server."""
    level = GZIP_LEVEL
    summary = os.path.join(b.base, "summary.json")
    compressors = [("B6", "gzip")] + ([("B7", "pigz")] if b.pigz else [])
    b.run(f"{workload} gz save ours", f"{binary} save --key {key}-gz --format gzip --compression-level {level} --path {path} --summary-json {summary}", work)
    ours_bytes = json.load(open(summary))["bytes"]
    for name, tool in compressors:
        b.run(f"{workload} gz save {name}", f"tar --posix -cf - {path} | {tool} -{level} -c | {b.aws} - s3://{BUCKET}/{tool}/{key}.tgz", work)
    archive = os.path.join(b.base, "cache.tgz")
    b.run(f"{workload} gz floor gzip -{level}", f"tar --posix -cf - {path} | gzip -{level} -c > {archive}", work)
    b.facts.setdefault(workload, {}).update({"ours gzip bytes": ours_bytes, f"gzip -{level} bytes": os.path.getsize(archive)})
    shutil.move(os.path.join(work, path), os.path.join(b.base, "original"))
    b.run(f"{workload} gz restore ours", f"{binary} restore --key {key}-gz --path {path}", work)
    remove(os.path.join(work, path))
    for name, tool in compressors:
        b.run(f"{workload} gz restore {name}", f"{b.aws} s3://{BUCKET}/{tool}/{key}.tgz - | {tool} -d -c | tar -xf -", work)
        remove(os.path.join(work, path))
    b.run(f"{workload} gz floor gzip -d", f"gzip -d -c {archive} > /dev/null", work)
    os.remove(archive)
    shutil.move(os.path.join(b.base, "original"), os.path.join(work, path))


def serve_runs(b, binary):
    """SV: one archive through `s3cache serve` (v2 calls, plain HTTP) and straight to the store with awscli."""
    work = os.path.join(b.base, "SV")
    os.makedirs(work)
    archive = os.path.join(work, "archive.bin")
    size = max(int((1 << 30) * b.args.scale), 16 << 20)
    rng = random.Random(7)
    with open(archive, "wb") as f:
        for offset in range(0, size, 1 << 20):
            f.write(rng.randbytes(min(1 << 20, size - offset)))
    port = free_port()
    env = dict(b.env, S3CACHE_STORE=f"s3://{BUCKET}/serve")
    server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--no-maintenance"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = f"{sys.executable} {os.path.join(REPO, 'bench', 'gha_client.py')}"
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        for run in range(b.args.runs):
            b.run("SV upload ours", f"{client} upload {base} sv-{run} {archive}", work)
            b.run("SV upload aws", f"{b.aws} {archive} s3://{BUCKET}/native/sv-{run}", work)
            b.run("SV download ours", f"{client} download {base} sv-{run}", work)
            b.run("SV download aws", f"{b.aws} s3://{BUCKET}/native/sv-{run} - > /dev/null", work)
            b.clear_store()
        status = open(f"/proc/{server.pid}/status").read()
        b.facts["SV"] = {"peak rss MB": int(status.split("VmHWM:")[1].split()[0]) / 1024, "bytes": size}
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work)


def warm_up(b, binary):
    """One save of 17 MiB, the heavy work after which s3cache has its optimized (Cranelift) guest
    cached, as on any machine after its first such run: the measured runs then start warm. (The first
    run compiles the quick Winch copy; W4 cold measures that.)"""
    work = os.path.join(b.base, "warm-up")
    os.makedirs(work)
    with open(os.path.join(work, "blob"), "wb") as f:
        f.write(os.urandom(17 << 20))
    subprocess.run([binary, "save", "--key", "warm-up", "--path", "blob"], env=b.env, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(work)
    compiled = sorted(name for name in os.listdir(b.cache_home) if name.endswith(".cwasm"))
    if not any(name.startswith("guest-cranelift-") for name in compiled):
        sys.exit(f"the warm-up left no optimized guest in {b.cache_home}: {compiled}")


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=float(os.environ.get("S3CACHE_BENCH_SCALE", "0.3")))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6,SV")
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    parser.add_argument("--binary", default=os.path.join(target_dir, "release", "s3cache"))
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--no-gzip", dest="gzip", action="store_false", help="skip the gzip rows (s3cache --format gzip, B6, B7)")
    parser.add_argument("--file-store-only", action="store_true",
                        help="for W1, W2 and W6 only the file:// rows (the sandbox's cost), no S3 server rows: quick to repeat while profiling")
    args = parser.parse_args()
    workloads = set(args.workloads.split(","))
    base = tempfile.mkdtemp(prefix="s3cache-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    b = Bench(args, base)
    b.pigz = shutil.which("pigz") is not None
    binary = args.binary
    try:
        warm_up(b, binary)
        for name, make in (("W1", gen_w1), ("W2", gen_w2), ("W3", gen_w3), ("W6", gen_w6)):
            if name in workloads and args.file_store_only:
                if name in ("W1", "W2", "W6"):
                    work, path = generate(b, name, make)
                    file_store_runs(b, name, work, path, binary)
                    shutil.rmtree(work)
            elif name in workloads:
                work, path = transfer_workload(b, name, make, binary)
                if name == "W1" and "W5" in workloads:
                    for _ in range(args.runs):
                        b.run("W5 key ours", f"{binary} key --template '{{{{ hashFiles \"**/*.js\" }}}}'", work)
                        b.run("W5 key B5", "find . -type f -name '*.js' -print0 | sort -z | xargs -0 sha256sum > /dev/null", work)
                if name in ("W1", "W2", "W6"):
                    file_store_runs(b, name, work, path, binary)
                if name != "W1":
                    shutil.rmtree(work)
        if "SV" in workloads:
            serve_runs(b, binary)
        if "W4" in workloads:
            work = os.path.join(base, "W4")
            os.makedirs(work)
            path = gen_w4(work, args.scale)
            subprocess.run([binary, "save", "--key", "w4", "--path", path], env=b.env, cwd=work, check=True, stderr=subprocess.DEVNULL)
            for _ in range(max(args.runs, 5)):
                b.run("W4 restore hit warm", f"{binary} restore --key w4 --path {path}", work)
                for cached in os.listdir(b.cache_home):
                    if cached.endswith(".cwasm"):
                        os.remove(os.path.join(b.cache_home, cached))
                b.run("W4 restore hit cold", f"{binary} restore --key w4 --path {path}", work)
        report(b, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"results": b.results, "facts": b.facts}, f, indent=1)
    finally:
        b.server.kill()
        b.server.wait()
        shutil.rmtree(base, ignore_errors=True)


def gzip_rows(b):
    """Rows for s3cache --format gzip against single-threaded gzip (B6, the goal: not slower) and pigz (B7)."""
    rows = []
    for workload in ("W1", "W2", "W3", "W6"):
        for phase in ("save", "restore"):
            ours = f"{workload} gz {phase} ours"
            if ours not in b.results:
                continue
            for baseline, tool in (("B6", "gzip"), ("B7", "pigz")):
                theirs = f"{workload} gz {phase} {baseline}"
                if theirs in b.results:
                    ratio = b.median(ours) / b.median(theirs)
                    met = ratio <= 1.0 if baseline == "B6" else None
                    rows.append((f"gzip {phase}", workload, f"{ratio:.2f}x {baseline} ({tool} -{GZIP_LEVEL})", "<= 1.0x" if baseline == "B6" else "(reference)", met))
        facts = b.facts.get(workload, {})
        if "ours gzip bytes" in facts:
            ratio = facts["ours gzip bytes"] / facts[f"gzip -{GZIP_LEVEL} bytes"]
            rows.append(("gzip size", workload, f"{ratio:.3f}x gzip -{GZIP_LEVEL}", "(reference)", None))
    return rows


def goal_rows(b, args):
    """Every row of the goal tables (issues 13 and 25) that this run measured: (goal, workload, measured, target, met)."""
    rows = []
    for phase, goals in (("save", (("B1", 0.8), ("B3", 0.9))), ("restore", (("B2", 0.6), ("B3", 0.8)))):
        for workload in ("W1", "W2", "W6"):
            ours = f"{workload} {phase} ours"
            if ours not in b.results:
                continue
            for baseline, goal in goals:
                ratio = b.median(ours) / b.median(f"{workload} {phase} {baseline}")
                rows.append((phase, workload, f"{ratio:.2f}x {baseline}", f"<= {goal}x {baseline}", ratio <= goal))
    native = {"save": "tar --posix | zstd -T0 -3", "restore": "zstd -d | tar -x"}
    for phase in ("save", "restore"):
        for workload in ("W1", "W2", "W6"):
            ours = f"{workload} file {phase} ours"
            if ours in b.results:
                ratio = b.median(ours) / b.median(f"{workload} file {phase} native")
                rows.append((f"sandbox cost, {phase}", f"{workload}, file:// store", f"{ratio:.2f}x {native[phase]}", "<= 1.0x", ratio <= 1.0))
    if "W4 restore hit cold" in b.results:
        cold, warm = b.median("W4 restore hit cold"), b.median("W4 restore hit warm")
        rows.append(("cold start", "W4, no compiled guest", f"{cold:.2f} s whole process", "< 1.5 s", cold < 1.5))
        rows.append(("warm tiny restore", "W4", f"{warm * 1000:.0f} ms whole process", "< 60 ms", warm < 0.060))
    for workload in ("W3", "W6"):
        if f"{workload} restore ours" in b.results:
            save, restore = b.median(f"{workload} save ours", 2), b.median(f"{workload} restore ours", 2)
            label = workload if workload != "W3" or args.scale >= 1 else f"W3 at scale {args.scale} (the goal is for 2 GiB)"
            rows.append(("memory", label, f"peak RSS {save:.0f} MB save, {restore:.0f} MB restore", "<= 128 MB", max(save, restore) <= 128))
    for phase in ("save", "restore"):
        if f"W6 file {phase} ours" in b.results:
            wall, cpu = b.median(f"W6 file {phase} ours"), b.median(f"W6 file {phase} ours", 1)
            native = b.median(f"W6 file {phase} native")
            rows.append(("CPU", f"W6 {phase}, file:// store", f"CPU time / wall {cpu / wall:.2f} ({wall / native:.2f}x native wall)", ">= 1.6", cpu / wall >= 1.6))
    for phase in ("save", "restore"):
        if f"W6 {phase} ours" in b.results:
            wall, cpu, server = (b.median(f"W6 {phase} ours", i) for i in (0, 1, 3))
            rows.append(("CPU on s3s-fs", f"W6 {phase}", f"({cpu:.2f} ours + {server:.2f} server) / {wall:.2f} s wall = {(cpu + server) / wall:.2f}", "(reference)", None))
    for workload in ("W1", "W2", "W6"):
        facts = b.facts.get(workload)
        if facts:
            ratio = facts["ours bytes"] / facts["zstd -3 bytes"]
            rows.append(("compression", workload, f"{ratio:.3f}x zstd -3 size", "<= 1.03x", ratio <= 1.03))
    if "W5 key ours" in b.results:
        ratio = b.median("W5 key B5") / b.median("W5 key ours")
        rows.append(("key computation", "W5", f"{ratio:.2f}x sha256sum throughput", ">= 0.8x", ratio >= 0.8))
    if "W3 save ours" in b.results:
        for phase in ("save", "restore"):
            ratio = b.median(f"W3 {phase} B3") / b.median(f"W3 {phase} ours")
            rows.append((f"transfer {phase}", "W3", f"{ratio:.2f}x B3 throughput", "(reference)", None))
    if "SV upload ours" in b.results:
        mib = b.facts["SV"]["bytes"] / (1 << 20)
        for phase in ("upload", "download"):
            ratio = b.median(f"SV {phase} aws") / b.median(f"SV {phase} ours")
            rows.append((f"serve {phase}", f"SV, {mib:.0f} MiB", f"{ratio:.2f}x aws s3 cp throughput", ">= 0.9x", ratio >= 0.9))
        rss = b.facts["SV"]["peak rss MB"]
        rows.append(("serve memory", "SV, 8 blocks of 64 MiB at once" if mib > 128 else f"SV, {mib:.0f} MiB (one Put Blob)", f"peak RSS {rss:.0f} MB", "<= 128 MB", rss <= 128))
    return rows + (gzip_rows(b) if args.gzip else [])


def report(b, args):
    print(f"s3cache benchmark: scale {args.scale}, median of {args.runs} runs, tmpfs, s3s-fs on loopback, {os.cpu_count()} cores")
    print(f"{'phase':<28}{'wall s':>9}{'cpu s':>9}{'rss MB':>9}{'server cpu s':>14}")
    for name in b.results:
        if "temp bytes" in name:
            continue
        print(f"{name:<28}{b.median(name):>9.3f}{b.median(name, 1):>9.3f}{b.median(name, 2):>9.1f}{b.median(name, 3):>14.3f}")
    print()
    print("goals (issues 13 and 25; ratios are ours / baseline wall time, below 1.0 means s3cache is faster)")
    if args.gzip and not b.pigz:
        print("  B7 (pigz) skipped: pigz is not installed (Debian package pigz; scripts/test installs it)")
    rows = goal_rows(b, args)
    widths = [max(len(str(row[i])) for row in rows + [("goal", "workload", "measured", "target")]) for i in range(4)]
    for goal, workload, measured, target, met in [("goal", "workload", "measured", "target", "")] + rows:
        verdict = {True: "met", False: "NOT met", None: "", "": ""}[met]
        print(f"  {goal:<{widths[0]}}  {workload:<{widths[1]}}  {measured:<{widths[2]}}  {target:<{widths[3]}}  {verdict}")
    checked = [row for row in rows if row[4] is not None]
    print(f"  {sum(1 for row in checked if row[4])} of {len(checked)} goals met")
    for workload, facts in b.facts.items():
        if workload == "SV" or "save requests" not in facts:
            continue
        print(f"  {workload} s3cache HTTP requests: save {facts['save requests']}, restore {facts['restore requests']}")
    for name, samples in b.results.items():
        if "temp bytes" in name:
            print(f"  {name}: {samples[0][0] / 1e6:.1f} MB temporary archive file; s3cache: 0 (streamed)")


if __name__ == "__main__":
    sys.exit(main())
