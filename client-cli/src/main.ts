#!/usr/bin/env node
import { runCli } from './program.ts';

// exitCode rather than exit(): stdout may still be draining into a pipe.
process.exitCode = await runCli(process.argv.slice(2));
