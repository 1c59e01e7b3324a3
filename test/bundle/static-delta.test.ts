import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { addTarget } from '../../src/repo/add-target.js';
import { commitSimRootfs } from '../../src/sim/rootfs.js';
import { signBundleTargets } from '../../src/tuf/bundle-targets.js';
import { serializeMetadata } from '../../src/tuf/sign-metadata.js';
import { certifiedRecipient } from '../support/encrypted.js';
import { akliteOffline, cli, ferryProcess, startFerryProcess, waitUntilStopped } from '../support/cli.js';
import { buildFactory, HARDWARE_ID, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { createSimDevice } from '../../src/sim/sim-device.js';
import { assertRefused, makeDevice, openTestDevice, statusOf } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';
import { mountExfatStick } from '../support/exfat-stick.js';

/**
 * The rootfs as one self-contained OSTree static delta (export --rootfs static-delta): generated from nothing or
 * from a base, named with its length and SHA-256 in the signed bundle-targets.json, checked against them before a
 * device writes a byte, and applied with `ostree static-delta apply-offline`.
 */

let factory: TestFactory;
let v5: string;
let v5Commit: string;
before(async () => {
  factory = await buildFactory();
  // Version 5: version 2's rootfs plus one small "package", for a delta bundle on top of version 2.
  const build = path.join(await tempDir('static-delta-build'), 'build');
  await commitSimRootfs({ repo: build, branch: 'test/v5', version: '5' });
  const added = await addTarget(factory.repo, {
    name: 'sim-lmp',
    version: '5',
    hardwareIds: [HARDWARE_ID],
    tags: [TAG],
    ref: 'test/v5',
    ostreeRepo: build,
  });
  v5 = added.name;
  v5Commit = added.commit;
});

/** Exports `target` with its rootfs as a static delta; the CLI's exit code must be 0. */
async function exportStaticDelta(target: string, ...extra: string[]): Promise<string> {
  const dst = path.join(await tempDir('static-delta'), extra.includes('--archive') ? 'stick.tar' : 'stick');
  const args = ['export', target, dst, '--repo', factory.repo.dir, '--tag', TAG, '--rootfs', 'static-delta'];
  const result = await cli(...args, ...extra);
  assert.equal(result.code, 0, result.stderr);
  return dst;
}

const bundleInfo = async (bundle: string): Promise<any> =>
  JSON.parse(await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8')).signed['x-ferry-bundle'];

async function installRebootRun(device: Awaited<ReturnType<typeof makeDevice>>, bundle: string, target: string) {
  const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
  assert.equal(install.code, 100, `stdout: ${install.stdout}\nstderr: ${install.stderr}`);
  assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
  const run = await cli('run', '--config', device.configDir);
  assert.equal(run.code, 0, run.stderr);
  assert.equal((await statusOf(device))['current'].name, target);
}

describe('export --rootfs static-delta', () => {
  test('a full bundle: one signed delta file and no ostree_repo/; show and verify accept it; it installs (100, reboot, run 0)', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const commit = factory.commits[factory.v2]!;
    assert.deepEqual((await fs.readdir(bundle)).sort(), ['apps', 'rootfs', 'tuf']);
    assert.deepEqual(await fs.readdir(path.join(bundle, 'rootfs')), [`${commit}.delta`]);
    const bytes = await fs.readFile(path.join(bundle, 'rootfs', `${commit}.delta`));
    const info = await bundleInfo(bundle);
    assert.deepEqual(info.rootfs, {
      form: 'static-delta',
      file: `rootfs/${commit}.delta`,
      length: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    const verified = await cli('verify', bundle);
    assert.equal(verified.code, 0, verified.stderr);
    const shown = await cli('show', bundle);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`rootfs as one OSTree static delta: rootfs/${commit}\\.delta`));
    assert.doesNotMatch(shown.stdout, /NOT on the stick/);
    const device = await makeDevice(factory, factory.v1);
    // check reads the stick as install does: the delta file is the target's content on it.
    const checked = await akliteOffline('check', '--config', device.configDir, '--src-dir', bundle, '--json');
    assert.equal(checked.code, 36, checked.stderr);
    const selected = JSON.parse(checked.stdout).targets.find((target: any) => target.name === factory.v2);
    assert.equal(selected.commitOnStick, true);
    await installRebootRun(device, bundle, factory.v2);
  });

  test('a delta bundle (--from) signs its base, verifies, and installs on a device at the base', async () => {
    // Read back, the export applies the delta on top of the base beside the factory, as a device would.
    const bundle = await exportStaticDelta(v5, '--from', factory.v2, '--read-back');
    const info = await bundleInfo(bundle);
    assert.equal(info.rootfs.from, factory.commits[factory.v2]);
    assert.deepEqual(info.base, { target: factory.v2, commit: factory.commits[factory.v2] });
    assert.deepEqual(await fs.readdir(path.join(bundle, 'rootfs')), [`${v5Commit}.delta`]);
    await assert.rejects(fs.access(path.join(bundle, 'ostree_repo')));
    // Only what version 5 adds: far smaller than the full delta from nothing.
    const full = await exportStaticDelta(v5);
    const size = async (dir: string) => (await fs.stat(path.join(dir, 'rootfs', `${v5Commit}.delta`))).size;
    assert.ok(
      (await size(bundle)) < (await size(full)) / 4,
      `delta ${await size(bundle)} B, full ${await size(full)} B`,
    );
    assert.equal((await cli('verify', bundle)).code, 0);
    assert.equal((await cli('show', bundle)).code, 0);
    await installRebootRun(await makeDevice(factory, factory.v2), bundle, v5);
  });

  test('a delta bundle on a device without its base: refused with 8 before anything is written', async () => {
    const bundle = await exportStaticDelta(v5, '--from', factory.v2);
    const device = await makeDevice(factory, factory.v1);
    await assertRefused(device, bundle, 8, new RegExp(`delta bundle on top of target "${factory.v2}"`));
  });

  test('a flipped byte in the delta file: install refuses with 66, the device unchanged; verify refuses it too', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const file = path.join(bundle, 'rootfs', `${factory.commits[factory.v2]}.delta`);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await fs.writeFile(file, bytes);
    const device = await makeDevice(factory, factory.v1);
    // The whole device but its status record, hashed before and after (the sysroot's repo among it).
    await assertRefused(device, bundle, 66, /^ferry: rootfs\/[0-9a-f]{64}\.delta hashes to [0-9a-f]{64}; the signed/);
    // The copy it hashed off the stick went with the refusal (the fingerprint above covers it too).
    assert.deepEqual(await deltaCopies(device), []);
    const verified = await cli('verify', bundle);
    assert.equal(verified.code, 66, verified.stderr);
    assert.equal((await akliteOffline('check', '--config', device.configDir, '--src-dir', bundle)).code, 66);
    // Cut short: its length alone gives it away.
    await fs.truncate(file, bytes.length - 1);
    const truncated = await cli('verify', bundle);
    assert.equal(truncated.code, 66, truncated.stderr);
    assert.match(truncated.stderr, /bytes; the signed bundle-targets.json says/);
  });

  test('as a tar (--archive tar): verify accepts it, and it installs', async () => {
    const tar = await exportStaticDelta(factory.v2, '--archive', 'tar');
    assert.equal((await cli('verify', tar)).code, 0);
    await installRebootRun(await makeDevice(factory, factory.v1), tar, factory.v2);
  });

  test('refused before anything is written: with --format fioctl (29), with --allow-multiple-targets or --tuf-only (2)', async () => {
    const dir = await tempDir('static-delta-refused');
    const base = ['--repo', factory.repo.dir, '--tag', TAG, '--rootfs', 'static-delta'];
    const fioctl = await cli('export', factory.v2, path.join(dir, 'fioctl'), ...base, '--format', 'fioctl');
    assert.equal(fioctl.code, 29, fioctl.stderr);
    // An existing ostree_repo/ bundle, which neither a second target nor a refresh may turn into a static delta.
    const existing = path.join(dir, 'existing');
    const exported = await cli('export', factory.v1, existing, '--repo', factory.repo.dir, '--tag', TAG);
    assert.equal(exported.code, 0, exported.stderr);
    const before = await hashTree(existing);
    for (const flag of ['--allow-multiple-targets', '--tuf-only']) {
      const target = flag === '--tuf-only' ? factory.v1 : factory.v2;
      const refused = await cli('export', target, existing, ...base, flag);
      assert.equal(refused.code, 2, `${flag}: ${refused.stderr}`);
      assert.match(refused.stderr, /^ferry: --rootfs static-delta writes a new bundle/);
    }
    assert.equal(await hashTree(existing), before);
    await assert.rejects(fs.access(path.join(dir, 'fioctl', 'tuf')));
  });
});

/** The static delta copies (ferry's `.bundle-*` scratch) beside the device's storage. */
async function deltaCopies(device: Awaited<ReturnType<typeof makeDevice>>): Promise<string[]> {
  const scratchParent = path.dirname(device.device.paths.statusFile);
  return (await fs.readdir(scratchParent)).filter((name) => name.startsWith('.bundle-'));
}

describe('install reads the static delta off the stick once', () => {
  test('a stick that serves other bytes after the digest check: the checked bytes are applied (100), no copy kept', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const file = path.join(bundle, 'rootfs', `${factory.commits[factory.v2]}.delta`);
    const checked = await fs.readFile(file);
    const device = await makeDevice(factory, factory.v1);
    // Paused after every check, just before the delta is applied: the stick's file becomes bytes of the same length
    // that are no delta at all, as a stick (or a device pretending to be one) may serve on a second read.
    const child = startFerryProcess(['install', '--config', device.configDir, '--src-dir', bundle], {
      FERRY_PAUSE_AT: 'install.rootfs-pull',
    });
    await waitUntilStopped(child.pid);
    const copies = await deltaCopies(device);
    await fs.writeFile(file, Buffer.alloc(checked.length, 0x5a));
    process.kill(child.pid, 'SIGCONT');
    const install = await child.result;
    assert.equal(install.code, 100, `stdout: ${install.stdout}\nstderr: ${install.stderr}`);
    assert.equal(copies.length, 1, 'the delta was copied off the stick before the apply');
    assert.deepEqual(await deltaCopies(device), [], 'the copy is removed once applied');
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    const run = await cli('run', '--config', device.configDir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await statusOf(device))['current'].name, factory.v2);
  });

  test('a copy a killed install left is removed by the next install, which goes through', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const device = await makeDevice(factory, factory.v1);
    const args = ['install', '--config', device.configDir, '--src-dir', bundle];
    const killed = await ferryProcess(args, { FERRY_CRASH_AT: 'install.rootfs-pull' });
    assert.equal(killed.signal, 'SIGKILL', `${killed.stdout}${killed.stderr}`);
    const left = await deltaCopies(device);
    assert.equal(left.length, 1, 'the killed install left its copy');
    const install = await cli(...args);
    assert.equal(install.code, 100, install.stderr);
    assert.deepEqual(await deltaCopies(device), [], 'the install removed the copy the killed one left');
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await cli('run', '--config', device.configDir)).code, 0);
  });
});

describe('the space an install of a static delta needs', () => {
  test('the copy counts beside the objects: room for the objects alone is 60 with the device unchanged; then it installs', async (t) => {
    // A rootfs with 8 MiB of random bytes, which no delta compresses: the delta file is that large, and so are the
    // objects it writes.
    const dir = await tempDir('static-delta-space');
    const bulk = path.join(dir, 'bulk.bin');
    await fs.writeFile(bulk, randomBytes(8 * 1024 * 1024));
    await commitSimRootfs({ repo: path.join(dir, 'build'), branch: 'test/bulky', version: '6', busybox: bulk });
    const bulky = await addTarget(factory.repo, {
      name: 'sim-lmp',
      version: '6',
      hardwareIds: [HARDWARE_ID],
      tags: [TAG],
      ref: 'test/bulky',
      ostreeRepo: path.join(dir, 'build'),
    });
    const bundle = await exportStaticDelta(bulky.name);
    const length = (await bundleInfo(bundle)).rootfs.length as number;
    // The device on a small filesystem of its own.
    const mountPoint = path.join(dir, 'small-fs');
    await fs.mkdir(mountPoint);
    const size = 48 * 1024 * 1024;
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint], { encoding: 'utf8' });
    if (mount.status !== 0) {
      assert.notEqual(process.env['CI'], 'true', `cannot mount a tmpfs in CI: ${mount.stderr}`);
      return t.skip('this machine cannot mount a tmpfs');
    }
    t.after(() => spawnSync('umount', ['-l', mountPoint]));
    await createSimDevice(path.join(mountPoint, 'device'), factory.repo, { target: factory.v1 });
    const device = await openTestDevice(path.join(mountPoint, 'device'));
    // Room for the objects, ostree's 3 % and the margin, and half the delta again: not for the copy as well.
    const free = (await fs.statfs(mountPoint)).bavail * (await fs.statfs(mountPoint)).bsize;
    const leave = length + Math.ceil(0.03 * size) + 1024 * 1024 + length / 2;
    const filler = path.join(mountPoint, 'filler');
    const fill = spawnSync('fallocate', ['-l', String(free - leave), filler], { encoding: 'utf8' });
    assert.equal(fill.status, 0, fill.stderr);
    await assertRefused(device, bundle, 60, /^ferry: space required \d+ B, available \d+ B/);
    assert.deepEqual(await deltaCopies(device), []);
    await fs.rm(filler);
    await installRebootRun(device, bundle, bulky.name);
  });
});

/**
 * Puts `content` in place of the bundle's delta file and signs its length and SHA-256 again with the factory's own
 * targets keys: a stick whose signed digest holds, and whose delta is not the target's.
 */
async function replaceDeltaSigned(bundle: string, content: Buffer): Promise<void> {
  const document = JSON.parse(await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8'));
  const info = document.signed['x-ferry-bundle'];
  await fs.writeFile(path.join(bundle, info.rootfs.file), content);
  info.rootfs = { ...info.rootfs, length: content.length, sha256: createHash('sha256').update(content).digest('hex') };
  const signed = signBundleTargets(document.signed, await factory.repo.keys.load('targets'));
  await fs.writeFile(path.join(bundle, 'tuf', 'bundle-targets.json'), serializeMetadata(signed as never));
}

describe('a static delta that matches its signed digest but not its target', () => {
  test('the delta of another commit: install ends in 67 with nothing deployed, and verify says 67', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const other = await exportStaticDelta(v5);
    await replaceDeltaSigned(bundle, await fs.readFile(path.join(other, 'rootfs', `${v5Commit}.delta`)));
    const verified = await cli('verify', bundle);
    assert.equal(verified.code, 67, verified.stderr);
    assert.match(verified.stderr, /did not write commit/);
    const device = await makeDevice(factory, factory.v1);
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(install.code, 67, install.stderr);
    assert.equal(install.stderr.trimEnd().split('\n').length, 1);
    assert.match(install.stderr, /the device repo does not hold commit/);
    const status = await statusOf(device);
    assert.equal(status['pending'], null);
    assert.equal(status['current'].name, factory.v1);
  });

  test('bytes that are no delta: install ends in 67, and verify says 67', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    await replaceDeltaSigned(bundle, Buffer.from('not an ostree static delta\n'));
    assert.equal((await cli('verify', bundle)).code, 67);
    const device = await makeDevice(factory, factory.v1);
    const before = await device.fingerprint();
    const install = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(install.code, 67, install.stderr);
    assert.match(install.stderr, /^ferry: applying rootfs\/[0-9a-f]{64}\.delta \(target "[^"]+"\) failed/);
    assert.equal(await device.fingerprint(), before, 'a delta ostree cannot read writes nothing');
  });
});

describe('a static-delta bundle on an exFAT stick (exfat-fuse)', () => {
  test('exported onto it with plain writes (one file under rootfs/), verified, installed and run from it', async (t) => {
    const stick = await mountExfatStick(64);
    if (stick === undefined) return t.skip('this machine cannot mount an exFAT stick');
    t.after(() => stick.unmount());
    const dst = path.join(stick.mountPoint, 'bundle');
    const exported = await cli(
      'export',
      factory.v2,
      dst,
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--rootfs',
      'static-delta',
      '--read-back',
    );
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(await fs.readdir(path.join(dst, 'rootfs')), [`${factory.commits[factory.v2]}.delta`]);
    assert.equal((await cli('verify', dst)).code, 0);
    await installRebootRun(await makeDevice(factory, factory.v1), dst, factory.v2);
  });
});

describe('an encrypted static-delta bundle (--encrypt-to)', () => {
  test('the delta file travels inside the ciphertext, and a recipient installs it', async () => {
    assert.equal((await cli('ca', 'init', '--repo', factory.repo.dir)).code, 0);
    const { device, certificate } = await certifiedRecipient(factory);
    const file = path.join(await tempDir('static-delta-encrypted'), 'update.bundle');
    const exported = await cli(
      'export',
      factory.v2,
      file,
      '--repo',
      factory.repo.dir,
      '--tag',
      TAG,
      '--rootfs',
      'static-delta',
      '--encrypt-to',
      certificate,
    );
    assert.equal(exported.code, 0, exported.stderr);
    const members = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
    assert.ok(members.includes('tuf/bundle-targets.json'), members.join(' '));
    assert.ok(!members.some((name) => name.startsWith('rootfs')), `no plain rootfs member: ${members.join(' ')}`);
    await installRebootRun(device, file, factory.v2);
  });
});

describe('an existing static-delta bundle: --tuf-only and --allow-multiple-targets', () => {
  test('keeps the delta and its base, signed anew once the delta is seen to write the target; a device takes it', async () => {
    const bundle = await exportStaticDelta(v5, '--from', factory.v2);
    const before = await bundleInfo(bundle);
    const refreshed = await cli('export', v5, bundle, '--repo', factory.repo.dir, '--tag', TAG, '--tuf-only');
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const after = await bundleInfo(bundle);
    assert.deepEqual(after.rootfs, before.rootfs);
    assert.deepEqual(after.base, before.base);
    assert.ok(after.signedAt >= before.signedAt);
    assert.equal((await cli('verify', bundle)).code, 0);
    await installRebootRun(await makeDevice(factory, factory.v2), bundle, v5);
  });

  test('a delta file that does not write the target is not signed again: 48, the bundle as it was', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    await fs.writeFile(path.join(bundle, 'rootfs', `${factory.commits[factory.v2]}.delta`), 'not a delta\n');
    const before = await hashTree(bundle);
    const refreshed = await cli('export', factory.v2, bundle, '--repo', factory.repo.dir, '--tag', TAG, '--tuf-only');
    assert.equal(refreshed.code, 48, refreshed.stderr);
    assert.match(refreshed.stderr, /does not apply/);
    assert.equal(await hashTree(bundle), before);
  });

  test('--allow-multiple-targets onto a static-delta bundle: 2, the bundle as it was', async () => {
    const bundle = await exportStaticDelta(factory.v2);
    const before = await hashTree(bundle);
    const args = ['--repo', factory.repo.dir, '--tag', TAG, '--allow-multiple-targets'];
    const added = await cli('export', factory.v1, bundle, ...args);
    assert.equal(added.code, 2, added.stderr);
    assert.match(added.stderr, /carries its rootfs as one static delta, for one target/);
    assert.equal(await hashTree(bundle), before);
  });
});
