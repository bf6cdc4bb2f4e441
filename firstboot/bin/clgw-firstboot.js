#!/usr/bin/env node
// Entry shim: present before the TypeScript is built, so npm can link the `clgw-firstboot`
// command on a fresh clone. The program itself is firstboot/dist/main.js (`make build`).
import '../dist/main.js';
