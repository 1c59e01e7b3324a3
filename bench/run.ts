/**
 * `npm run bench`: how much ferry costs on top of the minimum work. Each figure is a ratio against a baseline
 * command that does only the unavoidable part, measured in the same run on the same data:
 *   export   vs  ostree init + ostree pull-local (archive -> archive) of the target commit
 *   install  vs  ostree pull-local --untrusted (bundle -> sysroot repo) + ostree admin deploy
 *   verify   vs  JSON.parse + canonicalize + one ed25519 verify of a targets.json of 10,000 targets
 * and the size of a delta bundle (export --from) for the payload change, against the full bundle.
 * Wall time and peak RSS come from GNU time; each command runs several times and the median is kept. The data is
 * generated deterministically, so every run measures the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { canonicalize } from '@tufjs/canonical-json';
import { exportBundle } from '../src/bundle/export.js';
import type { FactoryRepo } from '../src/repo/factory-repo.js';
import { expiresInDays } from '../src/tuf/expires.js';
import { discardScratch, verifyBundleMetadata } from '../src/tuf/verify-metadata.js';
import { promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addTarget } from '../src/repo/add-target.js';
import { initFactoryRepo } from '../src/repo/factory-repo.js';
import { commitSimRootfs } from '../src/sim/rootfs.js';
import { createSimDevice, simConfigDir } from '../src/sim/sim-device.js';

const RUNS = Number(process.env['FERRY_BENCH_RUNS'] ?? 3);
const PAYLOAD_FILES = Number(process.env['FERRY_BENCH_FILES'] ?? 1500);
const FILE_BYTES = 32 * 1024;
const TARGETS = Number(process.env['FERRY_BENCH_TARGETS'] ?? 10_000);
const ferryCli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'ferry.js');

interface Sample {
  seconds: number;
  maxRssKb: number;
}

function measure(command: string, args: string[]): Sample {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], { encoding: 'utf8' });
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, rss] = last.split(' ').map(Number);
  if (result.status !== 0 && result.status !== 100)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return { seconds: seconds!, maxRssKb: rss! };
}

function sh(script: string): Sample {
  return measure('bash', ['-c', script]);
}

function median(samples: Sample[]): Sample {
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return { seconds: pick(samples.map((s) => s.seconds)), maxRssKb: pick(samples.map((s) => s.maxRssKb)) };
}

function report(name: string, baselineName: string, ferry: Sample, baseline: Sample): void {
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  console.log(
    `${name.padEnd(8)} time  ${ratio(ferry.seconds, baseline.seconds).padStart(6)}x  (ferry ${ferry.seconds.toFixed(2)} s, baseline ${baseline.seconds.toFixed(2)} s: ${baselineName})`,
  );
  console.log(
    `${''.padEnd(8)} RSS   ${ratio(ferry.maxRssKb, baseline.maxRssKb).padStart(6)}x  (ferry ${(ferry.maxRssKb / 1024).toFixed(0)} MiB, baseline ${(baseline.maxRssKb / 1024).toFixed(0)} MiB)`,
  );
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  try {
    const build = path.join(work, 'build');
    await commitSimRootfs({ repo: build, branch: 'bench/v1', version: '1' });
    // Version 2 carries a payload of incompressible files, so the copy dominates.
    const payload = path.join(work, 'payload');
    await fs.mkdir(path.join(payload, 'usr/share/bench'), { recursive: true });
    for (let i = 0; i < PAYLOAD_FILES; i++)
      await fs.writeFile(
        path.join(payload, 'usr/share/bench', `f${i}`),
        deterministicBytes(`payload ${i}`, FILE_BYTES),
      );
    const v2Tree = path.join(work, 'v2');
    spawnSync('ostree', [`--repo=${build}`, 'checkout', '-U', 'bench/v1', v2Tree], { stdio: 'inherit' });
    spawnSync('cp', ['-a', `${payload}/.`, v2Tree], { stdio: 'inherit' });
    spawnSync('ostree', [`--repo=${build}`, 'commit', '--branch=bench/v2', `--tree=dir=${v2Tree}`, '-s', 'v2'], {
      stdio: 'ignore',
    });

    // Version 3: version 2 plus one small "package" (1 % of the payload), for the delta figure.
    const v3Tree = path.join(work, 'v3');
    spawnSync('ostree', [`--repo=${build}`, 'checkout', '-U', 'bench/v2', v3Tree], { stdio: 'inherit' });
    await fs.mkdir(path.join(v3Tree, 'usr/share/package'), { recursive: true });
    for (let i = 0; i < Math.max(1, Math.floor(PAYLOAD_FILES / 100)); i++)
      await fs.writeFile(
        path.join(v3Tree, 'usr/share/package', `p${i}`),
        deterministicBytes(`package ${i}`, FILE_BYTES),
      );
    spawnSync('ostree', [`--repo=${build}`, 'commit', '--branch=bench/v3', `--tree=dir=${v3Tree}`, '-s', 'v3'], {
      stdio: 'ignore',
    });

    const repo = await initFactoryRepo(path.join(work, 'factory'), { rootExpiresInDays: 365 });
    await addTarget(repo, {
      name: 'bench',
      version: '1',
      hardwareIds: ['bench'],
      tags: ['main'],
      ref: 'bench/v1',
      ostreeRepo: build,
    });
    const v2 = await addTarget(repo, {
      name: 'bench',
      version: '2',
      hardwareIds: ['bench'],
      tags: ['main'],
      ref: 'bench/v2',
      ostreeRepo: build,
    });
    console.log(
      `payload: ${PAYLOAD_FILES} files, ${((PAYLOAD_FILES * FILE_BYTES) / 1048576).toFixed(0)} MiB; ${RUNS} runs each, medians`,
    );

    const exportFerry: Sample[] = [];
    const exportBase: Sample[] = [];
    const installFerry: Sample[] = [];
    const installBase: Sample[] = [];
    let bundle = '';
    for (let run = 0; run < RUNS; run++) {
      const dir = path.join(work, `run${run}`);
      await fs.mkdir(dir);
      bundle = path.join(dir, 'bundle');
      exportFerry.push(measure('node', [ferryCli, 'export', '--repo', repo.dir, v2.name, bundle, '--tag', 'main']));
      exportBase.push(
        sh(
          `ostree init --mode=archive --repo=${dir}/base-repo && ostree --repo=${dir}/base-repo pull-local ${repo.ostree.path} ${v2.commit}`,
        ),
      );

      const device = path.join(dir, 'device');
      await createSimDevice(device, repo, { target: 'bench-1' });
      installFerry.push(measure('node', [ferryCli, 'install', '--config', simConfigDir(device), '--src-dir', bundle]));
      const baseDevice = path.join(dir, 'base-device');
      await createSimDevice(baseDevice, repo, { target: 'bench-1' });
      const sysroot = path.join(baseDevice, 'sysroot');
      installBase.push(
        sh(
          `ostree --repo=${sysroot}/ostree/repo pull-local --untrusted ${bundle}/ostree_repo ${v2.commit} && ostree admin --sysroot=${sysroot} deploy --os=lmp ${v2.commit}`,
        ),
      );
    }
    report('export', 'ostree pull-local archive->archive', median(exportFerry), median(exportBase));
    report('install', 'ostree pull-local --untrusted + admin deploy', median(installFerry), median(installBase));

    // The delta for a one-package change (version 2 -> 3), against the full bundle of version 3.
    await addTarget(repo, {
      name: 'bench',
      version: '3',
      hardwareIds: ['bench'],
      tags: ['main'],
      ref: 'bench/v3',
      ostreeRepo: build,
    });
    const full = path.join(work, 'full-v3');
    const delta = path.join(work, 'delta-v3');
    measure('node', [ferryCli, 'export', '--repo', repo.dir, 'bench-3', full, '--tag', 'main']);
    measure('node', [ferryCli, 'export', '--repo', repo.dir, 'bench-3', delta, '--tag', 'main', '--from', 'bench-2']);
    const fullBytes = treeBytesSync(full);
    const deltaBytes = treeBytesSync(delta);
    console.log(
      `delta    size  ${((100 * deltaBytes) / fullBytes).toFixed(1).padStart(6)}%  (export --from: ${(deltaBytes / 1048576).toFixed(1)} MiB of the full ${(fullBytes / 1048576).toFixed(1)} MiB, for a one-package change)`,
    );

    await benchVerifyTargets(repo, work);
  } finally {
    spawnSync('chattr', ['-R', '-i', work], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Bytes that do not compress and are the same on every run: sha256 in counter mode over a seed, so that two runs (or
 * two machines) measure the same data.
 */
function deterministicBytes(seed: string, size: number): Buffer {
  const chunks: Buffer[] = [];
  for (let counter = 0; chunks.length * 32 < size; counter++)
    chunks.push(createHash('sha256').update(`${seed}/${counter}`).digest());
  return Buffer.concat(chunks).subarray(0, size);
}

/** The bytes of the regular files under `dir`. */
function treeBytesSync(dir: string): number {
  const out = spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout;
  return Number(out.split('\t')[0]);
}

/**
 * Verifying a targets.json of TARGETS targets: ferry's whole metadata walk (tuf-js from the trusted root through
 * timestamp, snapshot and targets, then bundle-targets.json) against the minimum: JSON.parse, canonicalize and one
 * ed25519 verify of that one file. In-process timings, the median of RUNS.
 */
async function benchVerifyTargets(repo: FactoryRepo, work: string): Promise<void> {
  const entry = (await repo.targets())['bench-1']!;
  const many: Record<string, unknown> = {};
  for (let i = 0; i < TARGETS; i++)
    many[`bench-${1000 + i}`] = { ...entry, custom: { ...entry.custom, version: String(1000 + i) } };
  await repo.publishTargets({ ...(await repo.targets()), ...many }, expiresInDays(new Date(), 30));
  const bundle = path.join(work, 'many');
  await exportBundle(repo, { targetName: 'bench-1', destination: bundle, tag: 'main', type: 'ci', expiresInDays: 30 });
  const targetsFile = path.join(bundle, 'tuf', 'targets.json');
  const root = JSON.parse(await fs.readFile((await repo.rootFiles())[0]!, 'utf8')) as {
    signed: { keys: Record<string, { keyval: { public: string } }> };
  };
  const ours: number[] = [];
  const baseline: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const trusted = await fs.mkdtemp(path.join(work, 'trusted-'));
    await fs.copyFile((await repo.rootFiles())[0]!, path.join(trusted, 'root.json'));
    let started = performance.now();
    const verified = await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: path.join(bundle, 'tuf') });
    ours.push(performance.now() - started);
    await discardScratch(verified);

    started = performance.now();
    const document = JSON.parse(await fs.readFile(targetsFile, 'utf8')) as {
      signed: unknown;
      signatures: Array<{ keyid: string; sig: string }>;
    };
    const signature = document.signatures[0]!;
    const raw = Buffer.from(root.signed.keys[signature.keyid]!.keyval.public, 'hex');
    const key = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]),
      format: 'der',
      type: 'spki',
    });
    if (!verify(null, Buffer.from(canonicalize(document.signed)), key, Buffer.from(signature.sig, 'hex')))
      throw new Error('the baseline could not verify targets.json');
    baseline.push(performance.now() - started);
  }
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const [a, b] = [pick(ours), pick(baseline)];
  console.log(
    `verify   time  ${(a / b).toFixed(2).padStart(6)}x  (ferry ${a.toFixed(0)} ms, baseline ${b.toFixed(0)} ms: JSON.parse + canonicalize + one ed25519 verify of a targets.json with ${TARGETS} targets)`,
  );
}

await main();
