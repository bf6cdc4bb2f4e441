#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=32 --no-opt --optimize-for-size
// Entry shim: present before the TypeScript is built, so npm can link the `clgw-console` command
// on a fresh clone. The program itself is console-tui/dist/clgw-console.mjs (`make build`), run
// with the options of its units (CONSOLE_NODE_OPTIONS in scripts/sim/boot-emulator.ts says why).
import '../dist/clgw-console.mjs';
