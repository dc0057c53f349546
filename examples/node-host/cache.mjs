// Computing keys, saving and restoring with the guest the way the `s3cache` binary does, against
// s3cache's file store, so the two hosts share entries. The guest does everything that touches
// untrusted bytes or templates; this module maps workspace-relative paths to preopened roots, reads
// mode bits and link targets (`lstat`; WASI cannot see them), extracts into fresh staging
// directories, re-checks and applies the guest's fixups, and only then moves the tree into place.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as entry from './entry.mjs';
import { GuestError } from './guest.mjs';
import { beneath, escape, fileTime } from './host-imports.mjs';
import { sanitizeMode, validateRelative, validateSymlinkTarget, Violation } from './policy.mjs';

const GLOB = /[*?[{]/;
const BRANCH_VARIABLES = ['S3CACHE_BRANCH', 'GITHUB_HEAD_REF', 'GITHUB_REF_NAME', 'CI_COMMIT_BRANCH', 'DRONE_BRANCH', 'CI_COMMIT_REF_NAME', 'VELA_BUILD_BRANCH', 'SEMAPHORE_GIT_BRANCH'];
let unique = 0;

/** Nothing was saved or restored: `error` is the guest's error case (or `entry`), `detail` an object. */
export class Miss extends Error {
  constructor(error, detail) {
    super(`${error}: ${JSON.stringify(detail)}`);
    Object.assign(this, { error, detail });
  }
}

function describeGuestError(err) {
  if (err.tag === 'rejected-member') return { member: err.val.member, reason: err.val.reason };
  if (err.tag === 'io') return { path: err.val.path, message: err.val.message };
  return { message: err.val };
}

/** The roots of workspace-relative `paths`, as `s3cache` resolves them (see the Python host). */
export function resolveRoots(paths, workspace) {
  const roots = new Map();
  const excludes = [];
  for (const spec of paths.flatMap((p) => p.split('\n')).map((l) => l.trim()).filter(Boolean)) {
    const exclude = spec.startsWith('!');
    const text = exclude ? spec.slice(1).trim() : spec;
    if (text.startsWith('/') || text.startsWith('~')) throw new Miss('unsupported-path', { message: `${text}: this host caches paths inside the workspace only` });
    const components = validateRelative(text);
    if (exclude) { excludes.push(components); continue; }
    if (components.length === 0) throw new Miss('unsupported-path', { message: `${text}: the workspace itself; cache something below it` });
    let split = components.findIndex((c) => GLOB.test(c));
    if (split < 0) split = components.length - 1;
    const key = components.slice(0, split).join('/');
    const pattern = components.slice(split).join('/');
    if (!roots.has(key)) roots.set(key, { key: components.slice(0, split), dir: path.join(workspace, ...components.slice(0, split)), prefix: ['workspace', ...components.slice(0, split)].join('/'), include: [], exclude: [] });
    const root = roots.get(key);
    if (!root.include.includes(pattern)) root.include.push(pattern);
  }
  const folded = [];
  for (const root of [...roots.values()].sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0))) {
    const outer = folded.find((o) => o.key.every((c, i) => root.key[i] === c));
    if (!outer) { folded.push(root); continue; }
    const relative = root.key.slice(outer.key.length).join('/');
    for (const pattern of root.include) if (!outer.include.includes(`${relative}/${pattern}`)) outer.include.push(`${relative}/${pattern}`);
  }
  for (const root of folded) {
    for (const components of excludes) {
      if (components.length > root.key.length && root.key.every((c, i) => components[i] === c)) root.exclude.push(components.slice(root.key.length).join('/'));
    }
  }
  return folded;
}

const guestRoot = (root, guestDir) => ({ guestDir, memberPrefix: root.prefix, includeGlobs: root.include, excludeGlobs: root.exclude });

function templateContext(env) {
  const branch = BRANCH_VARIABLES.map((name) => env[name]).find(Boolean) ?? '';
  return { os: entry.thisOs(), arch: entry.thisArch(), branch, epoch: BigInt(Math.floor(Date.now() / 1000)), workspaceDir: '/workspace' };
}

/** The target to store for a symlink: absolute targets inside the root made relative, else refused. */
function storableLink(rootDir, components, target) {
  let stored = target;
  if (target.startsWith('/')) {
    const inside = path.relative(rootDir, target);
    if (inside === '..' || inside.startsWith('../') || path.isAbsolute(inside)) throw new Violation('absolute target outside its cached path');
    stored = ('../'.repeat(components.length - 1) + inside).replace(/\/+$/, '') || '.';
  }
  validateSymlinkTarget(components, stored);
  return stored;
}

/** The `member` records of what the guest found, read with `lstat`. */
function describe(roots, found) {
  const members = [];
  const inodes = new Map();
  for (const item of found) {
    const root = roots[item.root];
    const components = validateRelative(item.relative);
    const file = path.join(root.dir, ...components);
    const info = fs.lstatSync(file, { bigint: true });
    let kind = info.isSymbolicLink() ? 'symlink' : info.isDirectory() ? 'directory' : info.isFile() ? 'file' : null;
    if (kind !== item.kind) {
      process.stderr.write(`warning: skipping ${escape(file)}: it changed while the cache was being saved\n`);
      continue;
    }
    let linkTarget;
    if (kind === 'symlink') {
      const target = fs.readlinkSync(file);
      try {
        linkTarget = storableLink(root.dir, components, target);
      } catch (why) {
        process.stderr.write(`warning: skipping symlink ${escape(file)} -> ${escape(target)}: ${why.message}\n`);
        continue;
      }
    } else if (kind === 'file' && info.nlink > 1n) {
      const inode = `${info.dev}:${info.ino}`;
      const first = inodes.get(inode);
      if (!first) inodes.set(inode, [item.root, item.relative]);
      else if (first[0] === item.root) { kind = 'hardlink'; linkTarget = first[1]; }
    }
    members.push({
      root: item.root, relative: item.relative, kind, mode: Number(info.mode & 0o7777n),
      size: kind === 'file' ? info.size : 0n,
      mtime: { seconds: info.mtimeNs / 1_000_000_000n, nanoseconds: Number(info.mtimeNs % 1_000_000_000n) }, linkTarget,
      slice: undefined, // the whole file: this host packs each file in one piece
    });
  }
  return members;
}

export class Cache {
  constructor(guest, workspace, storeDir, env = process.env) {
    Object.assign(this, { guest, workspace: path.resolve(workspace), storeDir, env });
  }

  async #call(extraPreopens, interfaceName, fn, args, streams = {}, withWorkspace = true) {
    const preopens = withWorkspace ? [{ host: this.workspace, guest: '/workspace', writable: false }, ...extraPreopens] : extraPreopens;
    try {
      return await this.guest.call(preopens, interfaceName, fn, args, { ...streams, env: this.env });
    } catch (err) {
      if (err instanceof GuestError) throw new Miss(err.tag, describeGuestError(err));
      throw err;
    }
  }

  async key(template) {
    return (await this.#call([], 'keys', 'resolve', [template, templateContext(this.env), []])).key;
  }

  async save(template, paths, format = 'zstd', level = undefined) {
    level ??= { zstd: 3, gzip: 6, tar: 0 }[format];
    const roots = resolveRoots(paths, this.workspace).filter((r) => fs.existsSync(r.dir) && fs.statSync(r.dir).isDirectory());
    const preopens = roots.map((r, i) => ({ host: r.dir, guest: `/roots/${i}`, writable: false }));
    const guestRoots = roots.map((r, i) => guestRoot(r, `/roots/${i}`));
    const resolution = await this.#call(preopens, 'keys', 'resolve', [template, templateContext(this.env), guestRoots]);
    const key = resolution.key;
    if (resolution.found.length === 0) return { 'nothing-to-save': key };
    if (Object.keys(entry.SUFFIXES).some((f) => fs.existsSync(entry.fileStorePath(this.storeDir, entry.objectName(key, f))))) return { 'already-exists': key };
    const members = describe(roots, resolution.found);
    fs.mkdirSync(this.storeDir, { recursive: true });
    const name = entry.objectName(key, format);
    const target = entry.fileStorePath(this.storeDir, name);
    const temporary = path.join(this.storeDir, `.tmp-node-${process.pid}-${unique++}`);
    const fd = fs.openSync(temporary, 'wx', 0o644);
    try {
      const digest = createHash('sha256');
      let written = 0;
      const sink = (chunk) => {
        for (let n = 0; n < chunk.length; ) n += fs.writeSync(fd, chunk, n);
        digest.update(chunk);
        written += chunk.length;
      };
      const options = { compression: entry.COMPRESSIONS[format], level, bufferSize: 1 << 20, endOfArchive: true };
      const summary = await this.#call(preopens, 'archive', 'pack', [guestRoots, members, options], { sink });
      const manifest = entry.newManifest(digest.digest('hex'), written, summary, format, level, paths);
      fs.writeSync(fd, entry.encodeTrailer(manifest));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(temporary, target);
      return { saved: key, object: name, members: Number(summary.members), bytes: fs.statSync(target).size };
    } catch (err) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
      fs.rmSync(temporary, { force: true });
      throw err;
    }
  }

  async restore(template, paths) {
    const key = await this.key(template);
    const file = Object.keys(entry.SUFFIXES).map((f) => entry.fileStorePath(this.storeDir, entry.objectName(key, f))).find((p) => fs.existsSync(p));
    if (!file) throw new Miss('no-entry', { message: `no cache entry for key ${JSON.stringify(key)}` });
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const tail = Buffer.alloc(Math.min(size, 16 << 10));
      fs.readSync(fd, tail, 0, tail.length, size - tail.length);
      let manifest;
      try {
        manifest = entry.decodeTrailer(tail, size);
        entry.checkRestorable(manifest, paths);
      } catch (why) {
        if (why instanceof entry.EntryError) throw new Miss('entry', { message: why.message });
        throw why;
      }
      const roots = resolveRoots(paths, this.workspace);
      const staging = roots.map((root) => {
        fs.mkdirSync(root.dir, { recursive: true });
        const dir = path.join(root.dir, `.s3cache-staging-${process.pid}-${unique++}`);
        fs.mkdirSync(dir, 0o700);
        return dir;
      });
      try {
        const source = verifyingSource(fd, manifest);
        const preopens = staging.map((dir, i) => ({ host: dir, guest: `/stage/${i}`, writable: true }));
        const guestRoots = roots.map((r, i) => guestRoot(r, `/stage/${i}`));
        const limits = { maxTotalBytes: 64n << 30n, maxMembers: 5_000_000n, maxPathBytes: 4096, maxDepth: 256, maxWindowLog: 27 };
        // Unpacking needs no workspace: the guest sees only the staging directories (preview2-shim
        // preopens are always writable, so leaving the workspace out is what keeps it read-only).
        const report = await this.#call(preopens, 'archive', 'unpack', [guestRoots, entry.COMPRESSIONS[manifest.compression], limits], { source }, false);
        if (!source.verified()) throw new Miss('stream-failed', { message: 'the guest returned before the end of the archive' });
        try {
          applyFixups(staging, report.fixups);
        } catch (why) {
          throw new Miss('fixup', { message: why.message });
        }
        roots.forEach((root, i) => merge(staging[i], root.dir, '', root.include.filter((p) => !GLOB.test(p))));
        return { restored: key, members: Number(report.members) };
      } finally {
        for (const dir of staging) fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** `archive-io.read` over the archive part of an object: fails at its end, instead of reporting the
 *  end, unless every byte matched the manifest's SHA-256. */
function verifyingSource(fd, manifest) {
  const digest = createHash('sha256');
  let offset = 0;
  let verified = false;
  const source = (max) => {
    const chunk = Buffer.alloc(Math.min(max, manifest.archive_bytes - offset));
    const n = chunk.length ? fs.readSync(fd, chunk, 0, chunk.length, offset) : 0;
    offset += n;
    digest.update(chunk.subarray(0, n));
    if (n > 0) return chunk.subarray(0, n);
    const actual = digest.copy().digest('hex');
    if (offset !== manifest.archive_bytes || actual !== manifest.sha256) {
      throw new Error(`SHA-256 mismatch: the manifest says ${manifest.sha256} (${manifest.archive_bytes} bytes), the archive is ${actual} (${offset} bytes)`);
    }
    verified = true;
    return new Uint8Array(0);
  };
  source.verified = () => verified;
  return source;
}

/** Applies the guest's fixups in staging after checking each again with the policy. */
function applyFixups(staging, fixups) {
  const directories = [];
  for (const fixup of fixups) {
    const root = staging[fixup.root];
    if (root === undefined) throw new Violation(`root ${fixup.root} does not exist`);
    const components = validateRelative(fixup.relative);
    const seconds = fileTime(fixup.mtime);
    if (fixup.kind === 'directory') { directories.push([beneath(root, components), sanitizeMode(fixup.mode, true), seconds]); continue; }
    if (components.length === 0) throw new Violation('a restored root must be a directory');
    const target = beneath(root, components);
    if (fixup.kind === 'symlink') {
      validateSymlinkTarget(components, fixup.linkTarget ?? '');
      fs.symlinkSync(fixup.linkTarget, target);
      fs.lutimesSync(target, seconds, seconds);
    } else if (fixup.kind === 'hardlink') {
      const source = beneath(root, validateRelative(fixup.linkTarget ?? ''));
      if (source === root || !fs.lstatSync(source).isFile()) throw new Violation('hard link target is not a regular file stored earlier under the same root');
      fs.linkSync(source, target);
    } else {
      if (!fs.lstatSync(target).isFile()) throw new Violation(`${fixup.relative}: expected a regular file in staging`);
      fs.chmodSync(target, sanitizeMode(fixup.mode, false));
      fs.lutimesSync(target, seconds, seconds);
    }
  }
  // Children change their parent's mtime, so directories come last, deepest first.
  for (const [dir, mode, seconds] of directories.reverse()) {
    if (!fs.lstatSync(dir).isDirectory()) throw new Violation(`${dir}: expected a directory in staging`);
    fs.chmodSync(dir, mode);
    fs.lutimesSync(dir, seconds, seconds);
  }
}

/** Moves the staged tree into place: swap points and non-directories replace their namesake whole,
 *  other directories merge into a real directory there. Never follows a symlink already there. */
function merge(source, target, relative, swapPoints) {
  for (const name of fs.readdirSync(source).sort()) {
    const child = relative ? `${relative}/${name}` : name;
    const staged = path.join(source, name);
    const placed = path.join(target, name);
    const info = fs.lstatSync(staged, { bigint: true });
    if (info.isDirectory() && !swapPoints.includes(child)) {
      let existing = null;
      try { existing = fs.lstatSync(placed); } catch (err) { if (err.code !== 'ENOENT') throw err; }
      if (existing && !existing.isDirectory()) { fs.unlinkSync(placed); existing = null; }
      if (!existing) fs.mkdirSync(placed);
      merge(staged, placed, child, swapPoints);
      fs.chmodSync(placed, Number(info.mode & 0o7777n));
      const seconds = fileTime({ seconds: info.mtimeNs / 1_000_000_000n, nanoseconds: Number(info.mtimeNs % 1_000_000_000n) });
      fs.lutimesSync(placed, seconds, seconds);
    } else {
      replace(staged, placed);
    }
  }
}

function replace(source, target) {
  let old = null;
  try {
    fs.lstatSync(target);
    old = path.join(path.dirname(target), `.s3cache-old-${process.pid}-${unique++}`);
    fs.renameSync(target, old);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  try {
    fs.renameSync(source, target);
  } catch (err) {
    if (old) fs.renameSync(old, target);
    throw err;
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
