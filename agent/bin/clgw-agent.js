#!/usr/bin/env -S node --max-semi-space-size=1
// Entry shim (see clgw.js): the agent daemon is agent/dist/main.js. The V8 option keeps its
// peak RSS near 90 MiB during a download (see AGENT_NODE_OPTIONS in scripts/sim/boot-emulator.ts).
import '../dist/main.js';
