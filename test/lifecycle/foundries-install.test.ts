import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { addTarget } from '../../src/repo/add-target.js';
import { initFactoryRepo } from '../../src/repo/factory-repo.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { createSimDevice, createSimDeviceFromCommit, copySimDevice } from '../../src/sim/sim-device.js';
import { targetFromMetadata, type Target } from '../../src/tuf/target.js';
import { akliteOffline, cli } from '../support/cli.js';
import { exportTo, HARDWARE_ID, TAG, tempDir } from '../support/factory.js';
import { buildFioctlFactory } from '../support/fioctl-factory.js';
import {
  FioStick,
  copyFioFixtureStick,
  fioFixtureKeys,
  newFioKey,
  serializeFio,
  setFioRoleKeys,
  signFio,
  type FioRoleName,
  type FioSigningKey,
} from '../support/foundries-signer.js';
import { assertRefused, openTestDevice, statusOf, type TestDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * A stick made by Foundries' own tools (../shared/fixtures/fio-offline) on a simulated device made from the stick's
 * own ostree_repo/ at fio-hw-lmp-1 (hardware id fio-hw, tag main), with the real ostree and fw_setenv: the device
 * learns the Foundries root it trusts from `device provision --trusted-root`, never from the stick; the stick then
 * installs as a ferry stick does, and copies of it forged with the fixture's keys are refused with the ferry
 * format's codes and the device unchanged.
 */

const PAST = '2026-01-01T00:00:00Z';

let fixture: FioStick;
let keys: Record<FioRoleName, FioSigningKey>;
let fixtureStick: string;
let fixtureRoot: string;
/** A device at fio-hw-lmp-1 that trusts no Foundries root. */
let unprovisionedDir: string;
/** The same device, provisioned with the fixture's 1.root.json. */
let provisionedDir: string;

before(async () => {
  fixture = await FioStick.fixture();
  keys = await fioFixtureKeys();
  const work = await tempDir('fio-install');
  fixtureStick = await copyFioFixtureStick(path.join(work, 'stick'));
  fixtureRoot = path.join(fixtureStick, 'tuf', '1.root.json');
  const entry = fixture.json('targets.json').signed.targets['fio-hw-lmp-1'];
  const initial = targetFromMetadata(
    'fio-hw-lmp-1',
    { sha256: String(entry.hashes.sha256).toLowerCase() },
    entry.custom,
  ) as Target;
  assert.ok(!('invalid' in initial));
  unprovisionedDir = path.join(work, 'unprovisioned');
  await createSimDeviceFromCommit(unprovisionedDir, path.join(fixtureStick, 'ostree_repo'), initial, {
    hardwareId: 'fio-hw',
    tags: ['main'],
  });
  provisionedDir = path.join(work, 'provisioned');
  await copySimDevice(unprovisionedDir, provisionedDir);
  const provision = await cli(
    'device',
    'provision',
    '--config',
    (await openTestDevice(provisionedDir)).configDir,
    '--trusted-root',
    fixtureRoot,
  );
  assert.equal(provision.code, 0, provision.stderr);
});

async function deviceCopy(provisioned = true): Promise<TestDevice> {
  const dir = path.join(await tempDir('fio-device'), 'device');
  await copySimDevice(provisioned ? provisionedDir : unprovisionedDir, dir);
  return openTestDevice(dir);
}

async function stickOf(forged: FioStick): Promise<string> {
  return copyFioFixtureStick(path.join(await tempDir('fio-stick'), 'stick'), forged);
}

const foundriesFile = (device: TestDevice, name: string): string =>
  path.join(device.device.paths.foundriesTrustDir, name);

async function installRebootRun(device: TestDevice, stick: string): Promise<void> {
  const install = await cli('install', '--config', device.configDir, '--src-dir', stick);
  assert.equal(install.code, 100, install.stderr);
  assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
  const run = await cli('run', '--config', device.configDir);
  assert.equal(run.code, 0, run.stderr);
}

/** Every role of the stick at `version`, signed again with the fixture's keys, each naming the one below it. */
function withRoleVersions(versions: { timestamp: number; snapshot: number; targets: number }): FioStick {
  const forged = fixture.clone();
  forged.resign('targets.json', [keys.targets], (signed) => ({ ...signed, version: versions.targets }));
  forged.resign('snapshot.json', [keys.snapshot], (signed) => ({ ...signed, version: versions.snapshot }));
  forged.restampTargets(keys.snapshot, keys.timestamp);
  forged.restampSnapshot(keys.timestamp, (signed) => ({ ...signed, version: versions.timestamp }));
  return forged;
}

/** A Foundries root of version `version` whose every role is `key`, signed by `signers`. */
function rootOf(version: number, key: FioSigningKey, signers: readonly FioSigningKey[]): Buffer {
  const signed = structuredClone(fixture.json('1.root.json').signed);
  signed.keys = {};
  signed.version = version;
  for (const role of ['root', 'timestamp', 'snapshot', 'targets'] as const) setFioRoleKeys(signed, role, [key], 1);
  return serializeFio(signFio(signed, signers));
}

async function writeTemp(name: string, bytes: Uint8Array): Promise<string> {
  const file = path.join(await tempDir('fio-root'), name);
  await fs.writeFile(file, bytes);
  return file;
}

describe('a Foundries stick on a ferry device', () => {
  test("the fixture stick installs fio-hw-lmp-2 (100), reboot, run 0, status shows it; the trusted state is the format's own", async () => {
    const device = await deviceCopy();
    const ferryTrustBefore = await hashTree(path.dirname(device.device.paths.trustedMetadataDir), [
      path.basename(device.device.paths.foundriesTrustDir),
      path.basename(device.device.paths.statusFile),
      path.basename(device.device.paths.journalFile),
    ]);
    await installRebootRun(device, fixtureStick);
    const status = await statusOf(device);
    assert.equal(status['current'].name, 'fio-hw-lmp-2');
    assert.equal(status['current'].commit, '14995b380e4922ee6382a549d0e533440d151ee59eeedbd70543094c7bbb1687');
    assert.equal(status['state'], 'DONE');
    assert.deepEqual(JSON.parse(await fs.readFile(foundriesFile(device, 'versions.json'), 'utf8')), {
      timestamp: 3,
      snapshot: 3,
      targets: 3,
    });
    assert.deepEqual(await fs.readFile(foundriesFile(device, 'root.json')), await fs.readFile(fixtureRoot));
    // The ferry format's trusted metadata is not where a Foundries stick's goes.
    await assert.rejects(fs.access(path.join(device.device.paths.trustedMetadataDir, 'timestamp.json')));
    assert.equal(
      await hashTree(path.dirname(device.device.paths.trustedMetadataDir), [
        path.basename(device.device.paths.foundriesTrustDir),
        path.basename(device.device.paths.statusFile),
        path.basename(device.device.paths.journalFile),
      ]),
      ferryTrustBefore,
    );
    // Installed again: the device runs it.
    const again = await cli('install', '--config', device.configDir, '--src-dir', fixtureStick);
    assert.equal(again.code, 0, again.stderr);

    // A status record that cannot be read is rebuilt from the device: the targets.json the install accepted names
    // what it runs.
    assert.deepEqual(
      await fs.readFile(foundriesFile(device, 'targets.json')),
      await fs.readFile(path.join(fixtureStick, 'tuf', 'targets.json')),
    );
    await fs.writeFile(device.device.paths.statusFile, '{"state": torn');
    const rebuilt = await cli('status', '--config', device.configDir, '--json');
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.equal(JSON.parse(rebuilt.stdout)['current']?.name, 'fio-hw-lmp-2');
  });

  test('aklite-offline install on the same stick: 100, reboot, run 0', async () => {
    const device = await deviceCopy();
    const install = await akliteOffline('install', '--config', device.configDir, '--src-dir', fixtureStick);
    assert.equal(install.code, 100, install.stderr);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await akliteOffline('run', '--config', device.configDir)).code, 0);
    assert.equal((await statusOf(device))['current'].name, 'fio-hw-lmp-2');
  });

  test('the stick packed as one tar file installs too (100)', async () => {
    const device = await deviceCopy();
    const file = path.join(await tempDir('fio-tar'), 'stick.tar');
    const made = spawnSync('tar', ['cf', file, '-C', fixtureStick, '.'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const install = await cli('install', '--config', device.configDir, '--src-dir', file);
    assert.equal(install.code, 100, install.stderr);
  });

  test('a device that trusts no Foundries root refuses the stick (27) and says to provision one; no trust on first use', async () => {
    const device = await deviceCopy(false);
    await assertRefused(device, fixtureStick, 27, /^ferry: .*trusts no Foundries root: provision .*--trusted-root/);
    await assert.rejects(fs.access(device.device.paths.foundriesTrustDir));
  });

  test('an unreadable trusted Foundries root is moved aside, never trusted: 27', async () => {
    const device = await deviceCopy();
    const root = foundriesFile(device, 'root.json');
    await fs.writeFile(root, '{"signed": torn');
    const install = await cli('install', '--config', device.configDir, '--src-dir', fixtureStick);
    assert.equal(install.code, 27, install.stderr);
    assert.equal(await fs.readFile(`${root}.broken`, 'utf8'), '{"signed": torn');
    await assert.rejects(fs.access(root));
  });

  test("a Foundries stick's apps are read in aklite's layout (apps/apps/ beside apps/blobs/) and checked along their digest chain", async () => {
    const factory = await buildFioctlFactory();
    const tuf = path.join(factory.repo.dir, 'tuf');
    const entry = JSON.parse(await fs.readFile(path.join(tuf, 'targets.json'), 'utf8')).signed.targets[
      factory.targets.v1
    ];
    const { docker_compose_apps: _apps, ...withoutApps } = entry.custom;
    // The board boots v1's rootfs and runs no app yet: v2 brings the app `hello` from the stick.
    const initial = targetFromMetadata(factory.targets.v1, { sha256: entry.hashes.sha256 }, withoutApps) as Target;
    assert.ok(!('invalid' in initial));
    const dir = path.join(await tempDir('fio-apps-device'), 'device');
    await createSimDeviceFromCommit(dir, factory.build, initial, { hardwareId: HARDWARE_ID, tags: [TAG] });
    const device = await openTestDevice(dir);
    const roots = (await fs.readdir(tuf)).filter((name) => name.endsWith('.root.json'));
    const provision = await cli(
      'device',
      'provision',
      '--config',
      device.configDir,
      '--trusted-root',
      ...roots.sort().map((name) => path.join(tuf, name)),
    );
    assert.equal(provision.code, 0, provision.stderr);

    const stick = await exportTo(factory, factory.targets.v2);
    await fs.access(path.join(stick, 'apps', 'apps', 'hello'));
    // One byte of the app's largest blob flipped: the digest chain refuses it (74) and the device stays as it was.
    const damaged = path.join(await tempDir('fio-apps-stick'), 'stick');
    await fs.cp(stick, damaged, { recursive: true });
    const blobs = path.join(damaged, 'apps', 'blobs', 'sha256');
    const sizes = await Promise.all(
      (await fs.readdir(blobs)).map(async (name) => ({ name, size: (await fs.stat(path.join(blobs, name))).size })),
    );
    const largest = path.join(blobs, sizes.sort((a, b) => b.size - a.size)[0]!.name);
    const bytes = await fs.readFile(largest);
    bytes[bytes.length >> 1]! ^= 0x01;
    await fs.writeFile(largest, bytes);
    await assertRefused(
      device,
      damaged,
      74,
      /^ferry: apps\/blobs\/sha256\/[0-9a-f]{12} \(layer of test\/hello\): content hashes to/,
    );

    const install = await cli('install', '--config', device.configDir, '--src-dir', stick);
    assert.equal(install.code, 100, install.stderr);
    // The device's own store keeps ferry's layout, whatever the stick's.
    assert.deepEqual(await fs.readdir(path.join(device.device.paths.appStore, 'hello')), [
      factory.appDigest.replace(/^sha256:/, ''),
    ]);
  });
});

describe('a Foundries stick forged with the fixture keys is refused, the device unchanged', () => {
  test('a flipped bit in the signature of targets.json: 11', async () => {
    const forged = fixture.clone();
    const document = forged.json('targets.json');
    const sig = Buffer.from(document.signatures[0].sig, 'base64');
    sig[0] = sig[0]! ^ 0x01;
    document.signatures[0].sig = sig.toString('base64');
    forged.write('targets.json', document);
    forged.restampTargets(keys.snapshot, keys.timestamp);
    await assertRefused(await deviceCopy(), await stickOf(forged), 11, /^ferry: tuf\/targets\.json: 0 valid signature/);
  });

  test('an expired timestamp.json: 12', async () => {
    const forged = fixture.clone();
    forged.resign('timestamp.json', [keys.timestamp], (signed) => ({ ...signed, expires: PAST }));
    await assertRefused(await deviceCopy(), await stickOf(forged), 12, /^ferry: tuf\/timestamp\.json.*expired/);
  });

  test('targets for another hardware id: 7', async () => {
    const forged = fixture.clone();
    forged.resign('targets.json', [keys.targets], (signed) => {
      for (const target of Object.values(signed.targets) as { custom: { hardwareIds: string[] } }[]) {
        target.custom.hardwareIds = ['other-hw'];
      }
      return signed;
    });
    forged.restampTargets(keys.snapshot, keys.timestamp);
    await assertRefused(await deviceCopy(), await stickOf(forged), 7, /^ferry: .*fio-hw/);
  });

  test('after an install, an older stick (timestamp 2 < 3) is refused: 18; targets rolled back under a newer timestamp: 11', async () => {
    const device = await deviceCopy();
    await installRebootRun(device, fixtureStick);
    const older = await stickOf(withRoleVersions({ timestamp: 2, snapshot: 2, targets: 2 }));
    await assertRefused(device, older, 18, /^ferry: tuf\/timestamp\.json: this stick is older/);
    const rolledBack = await stickOf(withRoleVersions({ timestamp: 4, snapshot: 4, targets: 2 }));
    await assertRefused(
      device,
      rolledBack,
      11,
      /^ferry: tuf\/targets\.json: version check failed: version 2 is less than the trusted version 3/,
    );
  });
});

describe('device provision --trusted-root (Foundries format)', () => {
  test('a second, unrelated root is refused (28) and nothing changes; the same root again is taken as it is', async () => {
    const device = await deviceCopy();
    const other = newFioKey();
    const unrelated = await writeTemp('1.root.json', rootOf(1, other, [other]));
    const before = await hashTree(device.dir);
    const refused = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', unrelated);
    assert.equal(refused.code, 28, refused.stderr);
    assert.match(refused.stderr.trimEnd(), /^ferry: .*root version 1 is not the root this device trusts[^\n]*$/);
    const newer = await writeTemp('2.root.json', rootOf(2, other, [other]));
    const notChained = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', newer);
    assert.equal(notChained.code, 28, notChained.stderr);
    assert.match(notChained.stderr, /does not chain from root version 1/);
    assert.equal(await hashTree(device.dir), before);
    const same = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', fixtureRoot);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /version 1 is already trusted/);
    assert.equal(await hashTree(device.dir), before);
  });

  test('a root that chains from the trusted one (signed by the old and the new root keys) is taken, and the stick installs under it', async () => {
    const device = await deviceCopy();
    const newRootKey = newFioKey();
    const rotated = fixture.clone();
    rotated.addRoot([keys.root, newRootKey], (signed) => setFioRoleKeys(signed, 'root', [newRootKey], 1));
    const root2 = await writeTemp('2.root.json', rotated.files.get('2.root.json')!);
    const provision = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', root2, '--json');
    assert.equal(provision.code, 0, provision.stderr);
    assert.deepEqual(JSON.parse(provision.stdout).foundriesRoot, {
      version: 2,
      changed: true,
      file: foundriesFile(device, 'root.json'),
    });
    assert.deepEqual(await fs.readFile(foundriesFile(device, 'root.json')), await fs.readFile(root2));
    // The fixture stick carries 1.root.json only: the device walks from its own version 2.
    await installRebootRun(device, fixtureStick);
  });

  test('while another ferry command holds the device lock, the root is not changed: 31', async () => {
    const device = await deviceCopy(false);
    const lock = path.join(device.config.rebootSentinelDir, 'ferry.lock');
    await fs.writeFile(lock, JSON.stringify({ pid: process.ppid, command: 'install', since: PAST }));
    const refused = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', fixtureRoot);
    assert.equal(refused.code, 31, refused.stderr);
    await assert.rejects(fs.access(device.device.paths.foundriesTrustDir));
  });

  test('the first root must carry its own signatures (26); no root is recorded', async () => {
    const device = await deviceCopy(false);
    const document = fixture.json('1.root.json');
    const sig = Buffer.from(document.signatures[0].sig, 'base64');
    sig[0] = sig[0]! ^ 0x01;
    document.signatures[0].sig = sig.toString('base64');
    const forged = await writeTemp('1.root.json', serializeFio(document));
    const refused = await cli('device', 'provision', '--config', device.configDir, '--trusted-root', forged);
    assert.equal(refused.code, 26, refused.stderr);
    await assert.rejects(fs.access(device.device.paths.foundriesTrustDir));
  });
});

test('a device that ferry sim create makes from a fioctl factory trusts its root in the Foundries format: 100, reboot, run 0', async () => {
  const dir = await tempDir('fioctl-sim');
  const repo = await initFactoryRepo(path.join(dir, 'repo'), { rootExpiresInDays: 365, metadataFormat: 'fioctl' });
  const build = path.join(dir, 'build');
  const names: string[] = [];
  for (const version of ['1', '2']) {
    await commitSimRootfs({ repo: build, branch: `rootfs/${version}`, version });
    const added = await addTarget(repo, {
      name: 'lmp',
      version,
      hardwareIds: [HARDWARE_ID],
      tags: [TAG],
      ref: `rootfs/${version}`,
      ostreeRepo: build,
    });
    names.push(added.name);
  }
  const deviceDir = path.join(dir, 'device');
  await createSimDevice(deviceDir, repo, { target: names[0]! });
  const device = await openTestDevice(deviceDir);
  const rootFiles = await repo.rootFiles();
  assert.deepEqual(await fs.readFile(foundriesFile(device, 'root.json')), await fs.readFile(rootFiles.at(-1)!));
  await assert.rejects(fs.access(path.join(device.device.paths.trustedMetadataDir, 'root.json')));
  await installRebootRun(device, await exportTo({ repo }, names[1]!));
  assert.equal((await statusOf(device))['current'].name, names[1]);
});
