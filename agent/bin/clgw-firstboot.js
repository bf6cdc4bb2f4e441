#!/usr/bin/env node
// Entry shim (see clgw-log-download.js): the program is agent/dist/cli/firstboot.js (`make build`).
import '../dist/cli/firstboot.js';
