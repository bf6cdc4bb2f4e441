#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link the `clgw-console` command
// on a fresh clone. The program itself is console-tui/dist/main.js (`make build`).
import '../dist/main.js';
