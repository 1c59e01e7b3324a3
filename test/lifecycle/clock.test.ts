import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { cli, ferryProcessAt, type ProcessResult } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, TAG, type TestFactory } from '../support/factory.js';
import { factoryKeys, resign } from '../support/hostile.js';
import { makeDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { readBundleJson } from '../support/tamper.js';

/**
 * Clockless trust on a simulated device: the device clock is set for a real ferry process with libfaketime, and
 * every install is the real command. The device's time floor is the newest signing time it has verified; expiry is
 * checked against the later of the clock and the floor.
 */

const DAY = 86_400_000;
const CLOCK_1970 = '1970-01-02 00:00:00';

let factory: TestFactory;

before(async () => {
  const probe = spawnSync('faketime', ['1970-01-02 00:00:00', process.execPath, '-e', 'console.log(Date.now())'], {
    env: { ...process.env, TZ: 'UTC' },
    encoding: 'utf8',
  });
  assert.equal(probe.error, undefined, 'faketime is needed (Debian package faketime; bash scripts/setup.sh)');
  assert.ok(Number(probe.stdout) < 2 * DAY, `faketime does not set node's clock here: ${probe.stdout}`);
  factory = await buildFactory();
});

/** A time as faketime takes it (UTC, the processes run with TZ=UTC). */
function fakeClock(date: Date): string {
  return date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, '');
}

async function installAt(clock: string, device: TestDevice, bundle: string): Promise<ProcessResult> {
  return ferryProcessAt(clock, ['install', '--config', device.configDir, '--src-dir', bundle]);
}

async function floorOf(device: TestDevice): Promise<string | undefined> {
  try {
    return (await fs.readFile(device.device.paths.timeFloorFile, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function signedAtOf(bundle: string): Promise<string> {
  const signedAt = (await readBundleJson(bundle, 'bundle-targets.json')).signed['x-ferry-bundle'] as {
    signedAt?: string;
  };
  assert.match(signedAt.signedAt ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  return signedAt.signedAt!;
}

async function expiresOf(bundle: string, file: string): Promise<string> {
  return (await readBundleJson(bundle, file)).signed['expires'] as string;
}

/** After an install that said 100: the simulated reboot and `run`, so the device can take the next bundle. */
async function commit(device: TestDevice): Promise<void> {
  assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
  const run = await cli('run', '--config', device.configDir);
  assert.equal(run.code, 0, run.stderr);
}

/** A refusal with 12 and one line on stderr matching `reason`, and not one byte of the device changed (floor included). */
async function assertExpiredRefusal(
  device: TestDevice,
  install: () => Promise<ProcessResult>,
  reason: RegExp,
): Promise<RegExpMatchArray> {
  const floor = await floorOf(device);
  const before = await device.fingerprint();
  const result = await install();
  assert.equal(result.code, 12, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  const match = reason.exec(lines[0]!);
  assert.ok(match, `${lines[0]} does not match ${reason}`);
  assert.equal(await floorOf(device), floor, 'a refusal must not move the time floor');
  assert.equal(await device.fingerprint(), before, 'the device changed after a refusal');
  const status = await statusOf(device);
  assert.equal(status['state'], 'WONTGO');
  assert.equal(status['lastError'].exitCode, 12);
  assert.equal(status['timeFloor'], floor ?? null);
  return match;
}

/** The device clock a refusal names, within a minute of the time faketime started it at. */
function assertClockNear(named: string | undefined, clock: string): void {
  const difference = Date.parse(named ?? '') - Date.parse(`${clock.replace(' ', 'T')}Z`);
  assert.ok(difference >= 0 && difference < 60_000, `the message names the clock ${named}, set to ${clock}`);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('clockless trust: the device time floor (clock set with libfaketime)', () => {
  test("clock in 1970: once the floor is past a bundle's expiry, that bundle is refused with 12", async () => {
    // F carries a signing time 60 days from now, as if the device met it two months on; E is exported after F
    // (newer versions, valid signatures) but expires 30 days from now, before F's signing time.
    const realNow = Date.now();
    const bundleF = await exportTo(factory, factory.v2, { now: new Date(realNow + 60 * DAY) });
    const bundleE = await exportTo(factory, factory.v3BootFails);
    const floorF = await signedAtOf(bundleF);
    const device = await makeDevice(factory, factory.v1);
    assert.equal(await floorOf(device), undefined, 'a new device has no floor');

    const first = await installAt(CLOCK_1970, device, bundleF);
    assert.equal(first.code, 100, first.stderr);
    assert.equal(await floorOf(device), floorF, 'the install raised the floor to the signing time of F');
    await commit(device);

    const expires = await expiresOf(bundleE, 'timestamp.json');
    assert.ok(Date.parse(expires) < Date.parse(floorF), 'E expires before the floor');
    const refused = await assertExpiredRefusal(
      device,
      () => installAt(CLOCK_1970, device, bundleE),
      new RegExp(
        `^ferry: tuf/timestamp\\.json expired at ${escape(expires)} \\(time used: ${escape(floorF)}; ` +
          `device clock (\\S+) is behind the trusted time floor ${escape(floorF)}\\)$`,
      ),
    );
    assertClockNear(refused[1], CLOCK_1970);
  });

  test('clock in 1970: a bundle still valid at the floor installs (100), and the floor rises to its signing time', async () => {
    const bundleA = await exportTo(factory, factory.v2);
    const bundleB = await exportTo(factory, factory.v3BootFails, { now: new Date(Date.now() + DAY) });
    const [floorA, floorB] = [await signedAtOf(bundleA), await signedAtOf(bundleB)];
    assert.ok(floorB > floorA);
    const device = await makeDevice(factory, factory.v1);
    const first = await cli('install', '--config', device.configDir, '--src-dir', bundleA);
    assert.equal(first.code, 100, first.stderr);
    assert.equal(await floorOf(device), floorA);
    await commit(device);

    const second = await installAt(CLOCK_1970, device, bundleB);
    assert.equal(second.code, 100, second.stderr);
    assert.equal(await floorOf(device), floorB);
    const status = await statusOf(device);
    assert.equal(status['pending'].target.name, factory.v3BootFails);
    assert.equal(status['timeFloor'], floorB);
    const text = await cli('status', '--config', device.configDir);
    assert.match(text.stdout, new RegExp(`^time floor: ${escape(floorB)}$`, 'm'));
  });

  test('far-future clock: the clock is used (refused with 12), the floor does not move, and it never becomes the floor', async () => {
    const bundleA = await exportTo(factory, factory.v2);
    // Signed a day later than A, so a refusal that raised the floor anyway would show.
    const bundleB = await exportTo(factory, factory.v3BootFails, { now: new Date(Date.now() + DAY) });
    const floorA = await signedAtOf(bundleA);
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleA)).code, 100);
    await commit(device);
    assert.equal(await floorOf(device), floorA);

    const refused = await assertExpiredRefusal(
      device,
      () => installAt('2100-01-01 00:00:00', device, bundleB),
      /^ferry: tuf\/root\.json: expired: .*\(time used: the device clock (\S+)\)$/,
    );
    assertClockNear(refused[1], '2100-01-01 00:00:00');

    // A clock 20 days ahead is still within the bundle's expiry: the install goes ahead, and the floor becomes the
    // signing time, not the clock.
    const ahead = new Date(Date.now() + 20 * DAY);
    const result = await installAt(fakeClock(ahead), device, bundleB);
    assert.equal(result.code, 100, result.stderr);
    const floorB = await signedAtOf(bundleB);
    assert.equal(await floorOf(device), floorB);
    assert.ok(Date.parse(floorB) < ahead.getTime() - 18 * DAY, 'the floor is the signing time, far behind the clock');
  });

  test('clock moving back between two installs: a bundle that expired before the floor is refused, the device unchanged', async () => {
    const bundleA = await exportTo(factory, factory.v2);
    const floorA = await signedAtOf(bundleA);
    const device = await makeDevice(factory, factory.v1);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', bundleA)).code, 100);
    await commit(device);
    assert.equal(await floorOf(device), floorA);

    // B is exported by a workstation whose clock read 40 days before A was signed: newer metadata versions, valid
    // signatures, but everything in it expired 10 days before A's signing time.
    const bundleB = path.join(await tempDir('bundle'), 'bundle');
    const exported = await ferryProcessAt(fakeClock(new Date(Date.parse(floorA) - 40 * DAY)), [
      'export',
      '--repo',
      factory.repo.dir,
      factory.v3BootFails,
      bundleB,
      '--tag',
      TAG,
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    const expires = await expiresOf(bundleB, 'timestamp.json');
    assert.ok(Date.parse(expires) < Date.parse(floorA));

    // The device clock goes back to 30 days before the floor: by the clock alone, B has 20 days left.
    const clock = fakeClock(new Date(Date.parse(floorA) - 30 * DAY));
    const refused = await assertExpiredRefusal(
      device,
      () => installAt(clock, device, bundleB),
      new RegExp(
        `^ferry: tuf/timestamp\\.json expired at ${escape(expires)} \\(time used: ${escape(floorA)}; ` +
          `device clock (\\S+) is behind the trusted time floor ${escape(floorA)}\\)$`,
      ),
    );
    assertClockNear(refused[1], clock);

    // The control: the same bundle at the same clock on a device that has no floor goes ahead, so the floor alone
    // made the difference.
    const fresh = await makeDevice(factory, factory.v1);
    const control = await installAt(clock, fresh, bundleB);
    assert.equal(control.code, 100, control.stderr);
    assert.equal(await floorOf(fresh), await signedAtOf(bundleB));
  });

  test('a bundle without signedAt (exported before it existed) still installs and leaves the floor where it was', async () => {
    const bundle = await exportTo(factory, factory.v2);
    await resign(bundle, 'bundle-targets.json', await factoryKeys(factory.repo, 'targets'), (signed) => {
      delete signed['x-ferry-bundle'].signedAt;
      return signed;
    });
    const info = (await readBundleJson(bundle, 'bundle-targets.json')).signed['x-ferry-bundle'] as Record<
      string,
      unknown
    >;
    assert.equal(info['signedAt'], undefined);
    const device = await makeDevice(factory, factory.v1);
    const floor = '2026-01-01T00:00:00Z';
    await fs.writeFile(device.device.paths.timeFloorFile, `${floor}\n`);
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
    assert.equal(await floorOf(device), floor);
  });

  test('an unreadable floor is moved aside to .broken and is no reason to refuse: the install goes ahead', async () => {
    const bundle = await exportTo(factory, factory.v2);
    const device = await makeDevice(factory, factory.v1);
    const file = device.device.paths.timeFloorFile;
    await fs.writeFile(file, 'not a date\n');
    const status = await statusOf(device);
    assert.equal(status['timeFloor'], null);
    assert.equal(await fs.readFile(`${file}.broken`, 'utf8'), 'not a date\n');

    await fs.mkdir(file);
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
    assert.equal(await floorOf(device), await signedAtOf(bundle));
    assert.ok((await fs.stat(`${file}.broken`)).isDirectory(), 'the unreadable floor (a directory) was moved aside');
  });
});
