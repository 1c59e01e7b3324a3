import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { exportBundle } from '../../src/bundle/export.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { buildAppsFactory, type AppsFactory } from '../support/apps-factory.js';
import { PrivateDockerd } from '../support/dockerd.js';
import { buildFactory, exportTo, OTHER_HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, openTestDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { flipSignatureBit, pastDate, resignBundleRole } from '../support/tamper.js';

/** scripts/factory-line.sh against simulated devices: one outcome each, read from its log as a supervisor would. */

const SCRIPT = fileURLToPath(new URL('../../../scripts/factory-line.sh', import.meta.url));
const FERRY = `${process.execPath} ${fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url))}`;

function factoryLine(
  device: TestDevice,
  bundle: string,
  env: Record<string, string> = {},
): Promise<{ code: number; log: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, '--sim', device.dir, bundle, device.configDir], {
      env: { ...process.env, FERRY, FERRY_TESTING_WAIT: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, log: out.trimEnd().split('\n') }));
  });
}

/** Each line: time, device config, then what happened. */
function steps(log: readonly string[]): string[] {
  return log.map((line) => {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ /, `a supervisor-readable line: ${line}`);
    return line.split(' ').slice(2).join(' ');
  });
}

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

describe('scripts/factory-line.sh', () => {
  test('an update: install 100, reboot, run 0: RESULT PASS with the new target, exit 0', async () => {
    const device = await makeDevice(factory, factory.v1);
    const { code, log } = await factoryLine(device, await exportTo(factory, factory.v2));
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 100/);
    assert.equal(lines[1], 'reboot (simulated)');
    assert.match(lines[2]!, /^run exit 0/);
    assert.equal(lines.at(-1), `RESULT PASS ${factory.v2}`);
    assert.equal((await statusOf(device))['current'].name, factory.v2);
  });

  test('already up to date: RESULT PASS, exit 0, nothing rebooted', async () => {
    const device = await makeDevice(factory, factory.v2);
    const { code, log } = await factoryLine(device, await exportTo(factory, factory.v2));
    assert.equal(code, 0, log.join('\n'));
    assert.ok(!steps(log).some((line) => line.startsWith('reboot')));
    assert.equal(steps(log).at(-1), `RESULT PASS ${factory.v2}`);
  });

  const refusals: Array<[string, () => Promise<{ device: TestDevice; bundle: string }>, number, RegExp]> = [
    [
      'a device of another board',
      async () => ({
        device: await makeDevice(factory, factory.v1, { hardwareId: OTHER_HARDWARE_ID }),
        bundle: await exportTo(factory, factory.v2),
      }),
      7,
      /not for this device/,
    ],
    [
      'a bit flipped in a signature',
      async () => {
        const bundle = await exportTo(factory, factory.v2);
        await flipSignatureBit(bundle, 'targets.json');
        return { device: await makeDevice(factory, factory.v1), bundle };
      },
      11,
      /bad, damaged or expired/,
    ],
    [
      'expired metadata',
      async () => {
        const bundle = await exportTo(factory, factory.v2);
        await resignBundleRole(factory.repo, bundle, 'timestamp', (signed) => ({ ...signed, expires: pastDate(1) }));
        return { device: await makeDevice(factory, factory.v1), bundle };
      },
      12,
      /bad, damaged or expired/,
    ],
    [
      'a rootfs that never boots: the bootloader rolls back',
      async () => ({
        device: await makeDevice(factory, factory.v1),
        bundle: await exportTo(factory, factory.v3BootFails),
      }),
      99,
      /rolled back/,
    ],
  ];
  for (const [name, arrange, expected, reason] of refusals) {
    test(`${name}: RESULT FAIL ${expected}, exit ${expected}`, async () => {
      const { device, bundle } = await arrange();
      const { code, log } = await factoryLine(device, bundle);
      assert.equal(code, expected, log.join('\n'));
      const last = steps(log).at(-1)!;
      assert.match(last, new RegExp(`^RESULT FAIL ${expected} `));
      assert.match(last, reason);
    });
  }
});

describe('scripts/factory-line.sh with apps', () => {
  let apps: AppsFactory;
  let daemon: PrivateDockerd;
  before(async () => {
    apps = await buildAppsFactory();
    daemon = await PrivateDockerd.start();
  });
  after(() => daemon?.stop());

  test('an apps-only update: install 101, engine restart, run 0: RESULT PASS', async () => {
    const dir = path.join(await tempDir('line-apps'), 'device');
    await createSimDevice(dir, apps.repo, {
      target: apps.targets.base,
      dockerHost: daemon.host,
      testingWindowSeconds: 1,
    });
    const device = await openTestDevice(dir);
    const bundle = path.join(await tempDir('line-bundle'), 'bundle');
    await exportBundle(apps.repo, {
      targetName: apps.targets.heartbeatV2,
      destination: bundle,
      tag: TAG,
      type: 'ci',
      expiresInDays: 30,
    });
    const marker = path.join(await tempDir('engine'), 'restarted');
    const { code, log } = await factoryLine(device, bundle, { FERRY_ENGINE_RESTART: `touch ${marker}` });
    assert.equal(code, 0, log.join('\n'));
    const lines = steps(log);
    assert.match(lines[0]!, /^install exit 101/);
    assert.equal(lines[1], `restart the container engine: touch ${marker}`);
    assert.equal(lines.at(-1), `RESULT PASS ${apps.targets.heartbeatV2}`);
    await fs.access(marker);
  });
});
