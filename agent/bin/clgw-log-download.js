#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link the `clgw-log-download`
// command on a fresh clone. The program itself is agent/dist/cli/log-download.js (`make build`).
import '../dist/cli/log-download.js';
