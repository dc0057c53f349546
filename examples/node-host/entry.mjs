// s3cache's entry format, outside the WIT world: the trailer after the archive, the entry version, and
// where a file store keeps an entry (docs/embedding.md, "The entry format"). Needed by a host that
// shares a store with the `s3cache` binary, not by one that only embeds the guest.

import { createHash } from 'node:crypto';
import * as path from 'node:path';
import * as os from 'node:os';

export const ARCHIVE_FORMAT = 1;
const FOOTER_MAGIC = Buffer.from('S3CACHE1');
const SKIPPABLE_MAGIC = Buffer.from([0x5e, 0x2a, 0x4d, 0x18]);
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff]);
const GZIP_MEMBER_END = Buffer.from([0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
const MAX_MANIFEST_BYTES = (16 << 10) - 64;
/** The guest's name of each compression, and each format's object-name suffix. */
export const COMPRESSIONS = { zstd: 'zstd', gzip: 'gzip', tar: 'none' };
export const SUFFIXES = { zstd: '.tar.zst', gzip: '.tar.gz', tar: '.tar' };

/** An object that is not a usable s3cache entry. */
export class EntryError extends Error {}

/** The OS and architecture names the Rust host records (`std::env::consts`). */
export const thisOs = () => ({ darwin: 'macos', win32: 'windows' })[process.platform] ?? process.platform;
export const thisArch = () => ({ x64: 'x86_64', arm64: 'aarch64' })[process.arch] ?? process.arch;

const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

/** SHA-256 over the paths (each with a newline), the format and the OS (or `\0cross-os`), 8 bytes hex. */
export function entryVersion(paths, format, crossOs, osName = thisOs()) {
  const digest = createHash('sha256');
  for (const p of paths) digest.update(`${p}\n`);
  digest.update(format);
  digest.update(crossOs ? '\0cross-os' : osName);
  return digest.digest('hex').slice(0, 16);
}

export function encodeTrailer(manifest) {
  const json = Buffer.from(JSON.stringify(manifest));
  if (json.length > MAX_MANIFEST_BYTES) throw new EntryError(`the manifest is ${json.length} bytes, over the limit`);
  const body = Buffer.concat([json, u32(json.length), FOOTER_MAGIC]);
  if (manifest.compression === 'gzip') {
    return Buffer.concat([GZIP_HEADER, u16(body.length + 4), Buffer.from('S3'), u16(body.length), body, GZIP_MEMBER_END]);
  }
  return Buffer.concat([SKIPPABLE_MAGIC, u32(body.length), body]);
}

const endsWith = (buffer, suffix) => buffer.length >= suffix.length && buffer.subarray(buffer.length - suffix.length).equals(suffix);

/** The manifest in `tail` (the last bytes of an object of `objectSize` bytes), framing checked. */
export function decodeTrailer(tail, objectSize) {
  const gzip = endsWith(tail, GZIP_MEMBER_END) && !endsWith(tail, FOOTER_MAGIC);
  const end = tail.length - (gzip ? GZIP_MEMBER_END.length : 0);
  if (end < 12 || !tail.subarray(end - 8, end).equals(FOOTER_MAGIC)) {
    throw new EntryError('the object has no s3cache trailer (not written by s3cache, truncated, or replaced)');
  }
  const jsonLength = tail.readUInt32LE(end - 12);
  if (jsonLength > MAX_MANIFEST_BYTES) throw new EntryError(`the s3cache trailer is malformed: a ${jsonLength}-byte manifest is over the limit`);
  const bodyLength = jsonLength + 12;
  const headerLength = gzip ? 16 : 8;
  const start = end - bodyLength - headerLength;
  if (start < 0) throw new EntryError("the s3cache trailer is malformed: the manifest does not fit the object's tail");
  const expected = gzip
    ? Buffer.concat([GZIP_HEADER, u16(bodyLength + 4), Buffer.from('S3'), u16(bodyLength)])
    : Buffer.concat([SKIPPABLE_MAGIC, u32(bodyLength)]);
  if (!tail.subarray(start, start + headerLength).equals(expected)) throw new EntryError('the s3cache trailer is malformed: bad header');
  const manifest = JSON.parse(tail.subarray(start + headerLength, start + headerLength + jsonLength).toString());
  if ((manifest.compression === 'gzip') !== gzip) throw new EntryError(`the s3cache trailer is malformed: a ${manifest.compression} manifest in the wrong layout`);
  const archiveEnd = objectSize - (tail.length - start);
  if (manifest.archive_bytes !== archiveEnd) {
    throw new EntryError(`the s3cache trailer is malformed: manifest says ${manifest.archive_bytes} archive bytes, the object holds ${archiveEnd}`);
  }
  return manifest;
}

/** The manifest of an entry saved from `paths` on this OS (not cross-OS, s3cache's member names). */
export function newManifest(sha256, archiveBytes, summary, format, level, paths) {
  return {
    format: ARCHIVE_FORMAT, sha256, archive_bytes: archiveBytes, os: thisOs(), arch: thisArch(),
    members: Number(summary.members), tar_bytes: Number(summary.tarBytes), compression: format, level,
    version: entryVersion(paths, format, false), paths, cross_os: false, plain_names: false,
  };
}

/** Refuses a manifest of another archive format or another entry version than `paths` on this OS. */
export function checkRestorable(manifest, paths) {
  if (manifest.format !== ARCHIVE_FORMAT) throw new EntryError(`archive format ${manifest.format} is not ${ARCHIVE_FORMAT}`);
  if (!(manifest.compression in COMPRESSIONS)) throw new EntryError(`the manifest's compression ${JSON.stringify(manifest.compression)} is not one this host knows`);
  const accepted = [entryVersion(paths, manifest.compression, false), entryVersion(paths, manifest.compression, true)];
  if (!accepted.includes(manifest.version)) throw new EntryError(`its version differs: saved for paths ${JSON.stringify(manifest.paths)}`);
}

/** The object name of `key`'s entry, `<scope>/<encoded key><suffix>`: each `/` of the key written as `,` (keys never hold commas). */
export const objectName = (key, format, scope = 'local') => `${scope}/${key.replaceAll('/', ',')}${SUFFIXES[format]}`;

/** Where s3cache's file store keeps `name`: every byte but letters, digits, `-._` percent-encoded. */
export function fileStorePath(storeDir, name) {
  const encoded = [...Buffer.from(name)].map((b) => (/[A-Za-z0-9._-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  return path.join(storeDir, encoded);
}

/** The default store and compiled-code directory of the `s3cache` binary. */
export const defaultCacheDir = () => process.env.S3CACHE_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 's3cache');
