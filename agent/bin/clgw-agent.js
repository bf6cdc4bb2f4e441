#!/usr/bin/env node
// Entry shim (see clgw.js): the agent daemon is agent/dist/main.js.
import '../dist/main.js';
