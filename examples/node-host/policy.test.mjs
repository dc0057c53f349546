// The host's re-check agrees with the Rust policy crate on every shared case
// (tests/fixtures/policy-cases.json). Run: node --test policy.test.mjs
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { sanitizeMode, validateRelative, validateSymlinkTarget, Violation } from './policy.mjs';

const cases = JSON.parse(fs.readFileSync(new URL('../../tests/fixtures/policy-cases.json', import.meta.url)));

function verdict(check, ...args) {
  try {
    return check(...args) ?? null;
  } catch (err) {
    if (err instanceof Violation) return err.message;
    throw err;
  }
}

test('relative paths', () => {
  for (const c of cases.relative) assert.deepEqual(verdict(validateRelative, c.path), c.violation ?? c.components, c.path);
});

test('symlink targets', () => {
  for (const c of cases.symlink) assert.equal(verdict(validateSymlinkTarget, validateRelative(c.link), c.target), c.violation ?? null, `${c.link} -> ${c.target}`);
});

test('modes', () => {
  for (const c of cases.mode) assert.equal(sanitizeMode(parseInt(c.mode, 8), c.directory), parseInt(c.sanitized, 8), JSON.stringify(c));
});
