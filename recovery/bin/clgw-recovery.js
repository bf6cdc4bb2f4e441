#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link `clgw-recovery` on a fresh
// clone. The program itself is recovery/dist/main.js (`make build`).
import '../dist/main.js';
