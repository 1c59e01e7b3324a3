#!/usr/bin/env node
import { keepRunningWhenReadersLeave, processIo } from './output.js';
import { run } from './program.js';

keepRunningWhenReadersLeave();
process.exitCode = await run('aklite-offline', process.argv.slice(2), processIo);
