#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=48 --expose-gc --no-concurrent-recompilation --optimize-for-size
// Entry shim (see clgw.js): the agent daemon is agent/dist/clgw-agent.mjs, agent/dist/main.js
// bundled with its dependencies by scripts/bundle.mjs (`make build`). The V8 options keep its
// memory down during a download (see AGENT_NODE_OPTIONS in scripts/sim/boot-emulator.ts; the
// systemd unit also sets MALLOC_ARENA_MAX=2, which a shim cannot).
import '../dist/clgw-agent.mjs';
