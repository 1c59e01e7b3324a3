#!/usr/bin/env node
import { processIo } from './output.js';
import { run } from './program.js';

process.exitCode = await run('aklite-offline', process.argv.slice(2), processIo);
