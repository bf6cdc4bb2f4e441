#!/usr/bin/env node
/** `clgw-release`: release signing keys, building and signing release trees, verifying them. */
import { main } from './command.js';

process.exitCode = await main(process.argv.slice(2));
