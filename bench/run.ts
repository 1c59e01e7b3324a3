/**
 * `npm run bench`: how much ferry costs on top of the minimum work. Each figure is a ratio against a baseline
 * command that does only the unavoidable part, measured in the same run on the same data:
 *   export   vs  ostree init + ostree pull-local (archive -> archive) of the target commit
 *   install  vs  ostree pull-local --untrusted (bundle -> sysroot repo) + ostree admin deploy
 * Wall time and peak RSS come from GNU time; each command runs several times and the median is kept.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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
      await fs.writeFile(path.join(payload, 'usr/share/bench', `f${i}`), randomBytes(FILE_BYTES));
    const v2Tree = path.join(work, 'v2');
    spawnSync('ostree', [`--repo=${build}`, 'checkout', '-U', 'bench/v1', v2Tree], { stdio: 'inherit' });
    spawnSync('cp', ['-a', `${payload}/.`, v2Tree], { stdio: 'inherit' });
    spawnSync('ostree', [`--repo=${build}`, 'commit', '--branch=bench/v2', `--tree=dir=${v2Tree}`, '-s', 'v2'], {
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
  } finally {
    spawnSync('chattr', ['-R', '-i', work], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
