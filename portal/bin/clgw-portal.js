#!/usr/bin/env -S node --max-old-space-size=24 --max-semi-space-size=1
// Entry shim: present before the TypeScript is built, so npm can link the `clgw-portal` command on
// a fresh clone. The daemon is portal/dist/clgw-portal.mjs, portal/dist/main.js bundled with what
// it imports (scripts/bundle.mjs, `make build`).
import '../dist/clgw-portal.mjs';
