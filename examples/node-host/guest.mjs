// Loading the s3cache guest component in Node.js through jco and calling its exports.
//
// jco transpiles the component into core wasm modules plus JavaScript glue that implements the
// canonical ABI (a second implementation of it, beside wasmtime's). The transpiled files depend only
// on the component's bytes and jco's version, so they are made once into `generated/` and reused while
// a stamp of both matches. Each call instantiates afresh with its own imports: WASI from
// preview2-shim, sandboxed (exactly the given preopens, no environment, no arguments, no network), and
// the s3cache interfaces from `host-imports.mjs`.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { hostImports, Session } from './host-imports.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const COMPONENT = path.join(HERE, '..', '..', 'host', 'embedded', 's3cache-guest.wasm');
const GENERATED = path.join(HERE, 'generated');

/** The guest returned the `error` variant: `tag` is its case (`rejected-member`, ...), `val` its value. */
export class GuestError extends Error {
  constructor(error) {
    super(`${error.tag}: ${JSON.stringify(error.val)}`);
    Object.assign(this, error);
  }
}

/** Transpiles `component` into `generated/` unless the files there were made from these bytes by this
 *  jco. Concurrent hosts may race here: each writes a private directory and renames it into place. */
export async function transpiled(component = COMPONENT) {
  const jco = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', '@bytecodealliance', 'jco-transpile', 'package.json')));
  const stamp = createHash('sha256').update(fs.readFileSync(component)).update(jco.version).digest('hex');
  const stampOf = (dir) => (fs.existsSync(path.join(dir, 'stamp')) ? fs.readFileSync(path.join(dir, 'stamp'), 'utf8') : null);
  if (stampOf(GENERATED) === stamp) return GENERATED;
  const { transpile } = await import('@bytecodealliance/jco-transpile');
  const fresh = `${GENERATED}.tmp-${process.pid}`;
  const result = await transpile(component, { name: 's3cache-guest', instantiation: { tag: 'async' }, outDir: fresh });
  for (const [file, bytes] of Object.entries(result.files)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, bytes);
  }
  fs.writeFileSync(path.join(fresh, 'stamp'), stamp);
  const stale = `${GENERATED}.old-${process.pid}`;
  if (fs.existsSync(GENERATED)) fs.renameSync(GENERATED, stale);
  try {
    fs.renameSync(fresh, GENERATED);
  } catch (err) {
    if (stampOf(GENERATED) !== stamp) throw err; // else another process put the same files in place
  }
  fs.rmSync(fresh, { recursive: true, force: true });
  fs.rmSync(stale, { recursive: true, force: true });
  return GENERATED;
}

export class Guest {
  /** Loads the transpiled guest; `verbose` shows the guest's debug and info messages. */
  static async load({ component = COMPONENT, verbose = false } = {}) {
    const dir = await transpiled(component);
    const { instantiate } = await import(pathToFileURL(path.join(dir, 's3cache-guest.js')).href);
    const modules = new Map();
    const compile = (name) => {
      if (!modules.has(name)) modules.set(name, WebAssembly.compile(fs.readFileSync(path.join(dir, name))));
      return modules.get(name);
    };
    return Object.assign(new Guest(), { instantiate, compile, verbose });
  }

  /** Runs `interfaceName.fn(...args)` in a new instance that sees `preopens` ({host, guest, writable});
   *  `sink` receives what the guest writes to `archive-io`, `source(max)` answers its reads. */
  async call(preopens, interfaceName, fn, args, { sink = null, source = null, env = {} } = {}) {
    const session = new Session(preopens, { env, verbose: this.verbose, sink, source });
    const wasi = new WASIShim({
      sandbox: { preopens: Object.fromEntries(preopens.map((p) => [p.guest, p.host])), env: {}, args: [], enableNetwork: false },
    }).getImportObject();
    const unversioned = Object.fromEntries(Object.entries(wasi).map(([name, value]) => [name.split('@')[0], value]));
    const exports = await this.instantiate(this.compile, { ...unversioned, ...hostImports(() => session) });
    try {
      return exports[interfaceName][fn](...args);
    } catch (err) {
      // jco throws the `err` value of an exported `result` (wrapped in a `ComponentError` whose
      // `payload` it is, in some versions and settings).
      const error = err instanceof Error && 'payload' in err ? err.payload : err;
      if (error && typeof error.tag === 'string') throw new GuestError(error);
      throw err;
    } finally {
      session.close();
    }
  }
}
