#!/usr/bin/env node
import { keepRunningWhenReadersLeave, processIo } from './output.js';
import { run } from './program.js';

keepRunningWhenReadersLeave();
process.exitCode = await run('ferry', process.argv.slice(2), processIo);
