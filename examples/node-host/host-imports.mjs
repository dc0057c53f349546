// The guest's imports, implemented for Node.js: `log`, `environment`, `archive-io` and `host-files`
// (the contract is docs/embedding.md). jco represents every `result` the same way: a host function
// returns the `ok` value or throws an object whose `payload` is the `err` value, and every variant is
// `{ tag, val }`.
//
// Node's `fs` cannot open a path relative to a directory descriptor, so confinement is done by path:
// every relative path is re-validated with the policy, every directory on the way is `lstat`ed and a
// symlink refused, and the last component is opened with `O_NOFOLLOW`. That is race-free against the
// guest, the only other writer of staging: it is blocked in the import call while the host runs.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sanitizeMode, validateRelative, Violation } from './policy.mjs';

const SECRET_WORDS = ['SECRET', 'TOKEN', 'PASSWORD', 'PASSWD', 'CREDENTIAL', 'PRIVATE', '_KEY', 'AUTH', 'SESSION'];
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/** Thrown by a host function to return the `err` case of its `result`. */
export class WitErr extends Error {
  constructor(payload) {
    super(typeof payload === 'string' ? payload : JSON.stringify(payload));
    this.payload = payload;
  }
}

/** `message` with control characters escaped, so it cannot inject terminal escapes or CI commands. */
export function escape(message) {
  return message.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
}

/** Whether `{{ env "NAME" }}` may see a variable: never credentials or tokens. */
export function mayExposeToTemplates(name) {
  const upper = name.toUpperCase();
  return !upper.startsWith('AWS_') && !upper.startsWith('ACTIONS_') && !SECRET_WORDS.some((w) => upper.includes(w));
}

function ioError(shown, err) {
  return new WitErr({ path: shown, message: err instanceof Violation ? err.message : err.code ? `${err.code}: ${err.syscall}` : String(err) });
}

/** A WIT timestamp as the floating-point seconds Node's `fs` takes. libuv truncates it to the
 *  microsecond, and a double near 1.7e9 is exact to ~0.2 µs, so half a microsecond is added: the file
 *  gets the mtime rounded to the nearest microsecond (nanoseconds cannot be set from Node). */
export function fileTime({ seconds, nanoseconds }) {
  return Number(seconds) + (nanoseconds + 500) / 1e9;
}

/** The host path of `components` beneath `root`, after refusing any symlink among its directories. */
export function beneath(root, components) {
  let current = root;
  for (const name of components.slice(0, -1)) {
    current = path.join(current, name);
    if (!fs.lstatSync(current).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR', syscall: 'open' });
  }
  return components.length ? path.join(current, components[components.length - 1]) : root;
}

/** The state of one guest instance: preopens, the current archive stream, its environment. */
export class Session {
  constructor(preopens, { env = process.env, verbose = false, sink = null, source = null } = {}) {
    this.preopens = new Map(preopens.map((p) => [p.guest, p]));
    Object.assign(this, { env, verbose, sink, source, current: null });
  }

  root(guestDir, writable = false) {
    const preopen = this.preopens.get(guestDir);
    if (!preopen || (writable && !preopen.writable)) throw new WitErr({ path: guestDir, message: writable ? 'not a writable preopen' : 'not a preopen' });
    return preopen.host;
  }

  close() {
    if (this.current) fs.closeSync(this.current.fd);
    this.current = null;
  }
}

function checked(guestDir, relative) {
  let components;
  try {
    components = validateRelative(relative);
  } catch (err) {
    throw ioError(`${guestDir}/${relative}`, err);
  }
  if (components.length === 0) throw new WitErr({ path: guestDir, message: 'the preopen itself is not a file' });
  return components;
}

function entryKind(entry) {
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isDirectory()) return 'directory';
  if (entry.isFile()) return 'file';
  return 'other';
}

/** Every import of the `cache-guest` world, by interface; `session()` is the current instance's. */
export function hostImports(session) {
  const readFile = (guestDir, relative, size) => {
    const shown = `${guestDir}/${relative}`;
    let fd;
    try {
      fd = fs.openSync(beneath(session().root(guestDir), checked(guestDir, relative)), O_RDONLY | O_NOFOLLOW);
      if (size === undefined) return fs.readFileSync(fd);
      const data = Buffer.alloc(size);
      let read = 0;
      while (read < size) {
        const n = fs.readSync(fd, data, read, size - read, null);
        if (n === 0) throw new WitErr({ path: shown, message: `file shrank while it was archived: ${read} of ${size} bytes` });
        read += n;
      }
      return data;
    } catch (err) {
      throw err instanceof WitErr ? err : ioError(shown, err);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  };
  const complete = () => {
    const current = session().current;
    session().current = null;
    if (!current) return;
    try {
      fs.fchmodSync(current.fd, sanitizeMode(current.mode, false));
      const seconds = fileTime(current.mtime);
      fs.futimesSync(current.fd, seconds, seconds);
    } catch (err) {
      throw ioError(current.shown, err);
    } finally {
      fs.closeSync(current.fd);
    }
  };
  const append = (bytes) => {
    const current = session().current;
    try {
      for (let written = 0; written < bytes.length; ) written += fs.writeSync(current.fd, bytes, written);
    } catch (err) {
      throw ioError(current.shown, err);
    }
  };
  const makeDirectories = (root, guestDir, relative) => {
    let current = root;
    try {
      for (const name of checked(guestDir, relative)) {
        current = path.join(current, name);
        try {
          fs.mkdirSync(current, 0o755);
        } catch (err) {
          if (err.code !== 'EEXIST') throw err;
        }
        if (!fs.lstatSync(current).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR', syscall: 'mkdir' });
      }
    } catch (err) {
      throw err instanceof WitErr ? err : ioError(`${guestDir}/${relative}`, err);
    }
  };
  const apply = (root, guestDir, op) => {
    if (op.tag === 'append') {
      if (!session().current) throw new WitErr({ path: guestDir, message: 'append without a file' });
      return append(op.val);
    }
    complete();
    if (op.tag === 'directory') return makeDirectories(root, guestDir, op.val);
    const { relative, contents, mode, mtime } = op.val;
    const shown = `${guestDir}/${relative}`;
    let fd;
    try {
      fd = fs.openSync(beneath(root, checked(guestDir, relative)), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch (err) {
      throw err instanceof WitErr ? err : ioError(shown, err);
    }
    session().current = { fd, shown, mode, mtime };
    append(contents);
  };

  return {
    's3cache:guest/log': {
      emit(level, message) {
        if (level === 'warn') process.stderr.write(`warning: ${escape(message)}\n`);
        else if (session().verbose) process.stderr.write(`${level}: ${escape(message)}\n`);
      },
    },
    's3cache:guest/environment': {
      get(name) {
        if (!mayExposeToTemplates(name)) {
          process.stderr.write(`warning: the key template asked for ${escape(name)}, which may hold a secret; it renders as empty\n`);
          return undefined;
        }
        return session().env[name] || undefined;
      },
    },
    's3cache:guest/archive-io': {
      write(bytes) {
        if (!session().sink) throw new WitErr('no output stream is open');
        try {
          session().sink(bytes);
        } catch (err) {
          throw new WitErr(String(err.message ?? err));
        }
      },
      read(max) {
        if (!session().source) throw new WitErr('no input stream is open');
        try {
          return session().source(Math.min(max, 4 << 20));
        } catch (err) {
          throw new WitErr(String(err.message ?? err));
        }
      },
    },
    's3cache:guest/host-files': {
      readDir(guestDir, relative) {
        const shown = relative ? `${guestDir}/${relative}` : guestDir;
        try {
          const dir = beneath(session().root(guestDir), validateRelative(relative));
          if (!fs.lstatSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR', syscall: 'opendir' });
          const entries = [];
          const skipped = [];
          for (const entry of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
            const name = entry.name.toString('utf8');
            if (!Buffer.from(name, 'utf8').equals(entry.name)) skipped.push(name);
            else entries.push({ name, kind: entryKind(entry) });
          }
          entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
          return { entries, skipped };
        } catch (err) {
          throw err instanceof WitErr ? err : ioError(shown, err);
        }
      },
      sha256(guestDir, relatives) {
        return relatives.map((relative) => createHash('sha256').update(readFile(guestDir, relative)).digest());
      },
      readFiles(guestDir, files) {
        return files.map(([relative, size]) => readFile(guestDir, relative, Number(size)));
      },
      write(guestDir, ops) {
        const root = session().root(guestDir, true);
        for (const op of ops) apply(root, guestDir, op);
      },
      finish() {
        complete();
      },
    },
  };
}
