#!/usr/bin/env node
// Transpiles host/embedded/s3cache-guest.wasm into generated/ once (scripts/test runs this before the
// tests, so that parallel tests find it ready); a no-op while the component and jco are unchanged.
import { transpiled } from './guest.mjs';

process.stdout.write(`${await transpiled()}\n`);
