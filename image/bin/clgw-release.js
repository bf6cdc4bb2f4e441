#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link `clgw-release` on a fresh
// clone. The program itself is image/dist/release/cli.js (`make build`).
import '../dist/release/cli.js';
