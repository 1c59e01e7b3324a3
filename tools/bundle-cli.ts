/**
 * Each command line ships as one file: node then reads and compiles one module instead of several hundred (commander,
 * tuf-js and its fetcher, execa, yaml…), which cuts its start-up from about 0.3 s to 0.1 s. Every command pays the
 * start-up, and a factory line runs thousands of them. The bundles replace the compiled entry points in place, so
 * the rest of dist/ (what the tests import) and every path to the commands stay as they are.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { LAUNCHER } from './cli-launcher.js';

const cliDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli');

const entryPoints = ['ferry.js', 'aklite-offline.js'].map((name) => path.join(cliDir, name));

await build({
  entryPoints,
  outdir: cliDir,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // The CommonJS dependencies inside an ES module still need a require of their own.
  banner: {
    js: "import { createRequire as createBundleRequire } from 'node:module'; const require = createBundleRequire(import.meta.url);",
  },
  // A native addon (the PKCS#11 binding) cannot join the bundle: it is required from node_modules when used.
  external: ['pkcs11js'],
  logLevel: 'warning',
});

for (const entry of entryPoints) {
  const code = await fs.readFile(entry, 'utf8');
  const firstLine = code.indexOf('\n') + 1;
  if (!code.startsWith('#!')) throw new Error(`${entry} does not start with a #! line`);
  await fs.writeFile(entry, LAUNCHER + code.slice(firstLine));
  // Executable, so that a symlink on the PATH (or `npm link`) runs them as `ferry` and `aklite-offline`.
  await fs.chmod(entry, 0o755);
}
