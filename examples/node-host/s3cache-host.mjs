#!/usr/bin/env node
// A third host for the s3cache guest, in Node.js through jco: a portability test of the WIT contract
// on V8 with a second canonical-ABI implementation. The same commands as the Python host:
//
//   s3cache-host.mjs [--store DIR] key --template T
//   s3cache-host.mjs [--store DIR] save --key K --path P [--path P ...] [--format zstd|gzip|tar]
//   s3cache-host.mjs [--store DIR] restore --key K --path P [--path P ...]
//
// One JSON line on stdout; exit 0 done, 1 a miss or refusal (its JSON names the guest's error case),
// 2 bad usage. Users of s3cache never need Node.

import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Cache, Miss } from './cache.mjs';
import { defaultCacheDir } from './entry.mjs';
import { Guest } from './guest.mjs';

const [command, ...rest] = process.argv.slice(2).filter((a, i, all) => !(a === '--store' || all[i - 1] === '--store' || a === '--verbose'));
const storeAt = process.argv.indexOf('--store');
const store = storeAt >= 0 ? process.argv[storeAt + 1] : path.join(defaultCacheDir(), 'store');
let options;
try {
  ({ values: options } = parseArgs({
    args: rest,
    options: { template: { type: 'string' }, key: { type: 'string' }, path: { type: 'string', multiple: true }, format: { type: 'string', default: 'zstd' }, 'compression-level': { type: 'string' } },
  }));
  if (!['key', 'save', 'restore'].includes(command) || (command === 'key' ? !options.template : !options.key || !options.path)) throw new Error('usage: s3cache-host.mjs [--store DIR] key --template T | save|restore --key K --path P...');
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const started = performance.now();
const guest = await Guest.load({ verbose: process.argv.includes('--verbose') });
const cache = new Cache(guest, process.cwd(), store);
try {
  if (command === 'key') {
    process.stdout.write(`${await cache.key(options.template)}\n`);
  } else {
    const level = options['compression-level'] === undefined ? undefined : Number(options['compression-level']);
    const result = command === 'save' ? await cache.save(options.key, options.path, options.format, level) : await cache.restore(options.key, options.path);
    process.stdout.write(`${JSON.stringify({ ...result, seconds: Math.round(performance.now() - started) / 1000 })}\n`);
  }
} catch (err) {
  if (!(err instanceof Miss)) throw err;
  process.stdout.write(`${JSON.stringify({ miss: options.key, error: err.error, ...err.detail })}\n`);
  process.exitCode = 1;
}
