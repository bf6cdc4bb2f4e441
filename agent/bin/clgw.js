#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link the `clgw` command on a
// fresh clone. The program itself is agent/dist/cli/clgw.js (`make build`).
import '../dist/cli/clgw.js';
