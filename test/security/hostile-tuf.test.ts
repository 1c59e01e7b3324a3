import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { akliteOffline, cli } from '../support/cli.js';
import { addOfflineTargetsKeys } from '../../src/repo/rotate-keys.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { addRoot, factoryKeys, newKey, resign, setRoleKeys } from '../support/hostile.js';
import { assertRefused, makeDevice, type TestDevice, trustedMetadata } from '../support/sim-device.js';
import { flipSignatureBit, pastDate, readBundleJson } from '../support/tamper.js';

/**
 * The TUF attack matrix (issue: hostile media). Each case forges one property of a bundle for v2 and offers it to
 * a device on v1: the install is refused with its own code and a one-line reason, and the device is unchanged.
 */

let factory: TestFactory;
before(async () => {
  factory = await buildFactory();
});

const bundleV2 = () => exportTo(factory, factory.v2);
const deviceV1 = () => makeDevice(factory, factory.v1);
const keys = (role: 'root' | 'targets' | 'snapshot' | 'timestamp') => factoryKeys(factory.repo, role);

/** A device that has installed and committed a bundle exported now, so its trusted metadata is at today's versions. */
async function deviceThatTrustsNewMetadata(): Promise<TestDevice> {
  const device = await deviceV1();
  const fresh = await bundleV2();
  assert.equal((await cli('install', '--config', device.configDir, '--src-dir', fresh)).code, 100);
  assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
  assert.equal((await cli('run', '--config', device.configDir)).code, 0);
  return device;
}

describe('hostile media: signatures and thresholds', () => {
  for (const file of ['timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json']) {
    test(`a flipped bit in the signature of ${file}: 11`, async () => {
      const bundle = await bundleV2();
      await flipSignatureBit(bundle, file);
      await assertRefused(
        await deviceV1(),
        bundle,
        11,
        new RegExp(`${file.replace('.', '\\.')}.*(signature|valid signature)`),
      );
    });
  }

  test('targets.json with its signatures removed: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'targets.json', []);
    await assertRefused(await deviceV1(), bundle, 11, /targets\.json: signature check failed/);
  });

  test('targets.json signed by a key root.json does not know: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'targets.json', [newKey()]);
    await assertRefused(
      await deviceV1(),
      bundle,
      11,
      /targets\.json: signature check failed: targets was signed by 0\/1 keys/,
    );
  });

  test('targets content changed and signed by the snapshot key instead: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'targets.json', await keys('snapshot'), (signed) => ({ ...signed, targets: {} }));
    await assertRefused(await deviceV1(), bundle, 11, /targets\.json: signature check failed/);
  });

  describe('with a targets threshold of 2 (root version 2 adds a second targets key)', () => {
    async function thresholdBundle(
      sign: (
        k1: Awaited<ReturnType<typeof keys>>[number],
        k2: ReturnType<typeof newKey>,
      ) => ReturnType<typeof newKey>[],
    ): Promise<string> {
      const bundle = await bundleV2();
      const [k1] = await keys('targets');
      const k2 = newKey();
      await addRoot(bundle, await keys('root'), (root) => setRoleKeys(root, 'targets', [k1!, k2], 2));
      const signers = sign(k1!, k2);
      await resign(bundle, 'targets.json', signers);
      await resign(bundle, 'bundle-targets.json', [k1!, k2]);
      return bundle;
    }

    test('both keys sign: accepted (the control case)', async () => {
      const bundle = await thresholdBundle((k1, k2) => [k1, k2]);
      const device = await deviceV1();
      const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
      assert.equal(result.code, 100, result.stderr);
    });

    test('one key signs: below the threshold, 11', async () => {
      const bundle = await thresholdBundle((k1) => [k1]);
      await assertRefused(
        await deviceV1(),
        bundle,
        11,
        /targets\.json: signature check failed: targets was signed by 1\/2 keys/,
      );
    });

    test('one key signs twice: duplicates count once, 11', async () => {
      const bundle = await thresholdBundle((k1) => [k1, k1]);
      await assertRefused(await deviceV1(), bundle, 11, /targets\.json: signature check failed/);
    });

    test('bundle-targets.json signed by one of the two keys: 11', async () => {
      const bundle = await thresholdBundle((k1, k2) => [k1, k2]);
      const [k1] = await keys('targets');
      await resign(bundle, 'bundle-targets.json', [k1!]);
      await assertRefused(
        await deviceV1(),
        bundle,
        11,
        /bundle-targets\.json: 1 valid signature\(s\) from targets keys, threshold is 2/,
      );
    });
  });
});

describe('hostile media: expiry and malformed metadata', () => {
  for (const role of ['timestamp', 'snapshot', 'targets'] as const) {
    test(`expired ${role}.json: 12`, async () => {
      const bundle = await bundleV2();
      await resign(bundle, `${role}.json`, await keys(role), (signed) => ({ ...signed, expires: pastDate(1) }));
      await assertRefused(await deviceV1(), bundle, 12, new RegExp(`${role}\\.json.*expired`));
    });
  }

  test('expired bundle-targets.json: 12', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', await keys('targets'), (signed) => ({
      ...signed,
      expires: pastDate(2),
    }));
    await assertRefused(await deviceV1(), bundle, 12, /bundle-targets\.json expired at/);
  });

  test('an expired root at the end of the chain: 12', async () => {
    const bundle = await bundleV2();
    await addRoot(bundle, await keys('root'), (root) => {
      root['expires'] = pastDate(1);
    });
    await assertRefused(await deviceV1(), bundle, 12, /root\.json is expired/);
  });

  for (const [label, expires] of [
    ['"not-a-date"', 'not-a-date'],
    ['milliseconds', '2030-01-01T00:00:00.123Z'],
    ['a time zone offset', '2030-01-01T00:00:00+00:00'],
  ] as const) {
    test(`an expiry with ${label} (which tuf-js would take as never expiring): 16`, async () => {
      const bundle = await bundleV2();
      await resign(bundle, 'timestamp.json', await keys('timestamp'), (signed) => ({ ...signed, expires }));
      await assertRefused(await deviceV1(), bundle, 16, /tuf\/timestamp\.json: expires .* is not YYYY-MM-DDTHH:MM:SSZ/);
    });
  }

  test('targets.json that is not JSON: 16', async () => {
    const bundle = await bundleV2();
    await fs.writeFile(path.join(bundle, 'tuf', 'targets.json'), '{"signed": ');
    await assertRefused(await deviceV1(), bundle, 16, /tuf\/targets\.json:/);
  });

  test('an oversized timestamp.json (read with a size cap, never parsed): 16', async () => {
    const bundle = await bundleV2();
    await fs.writeFile(path.join(bundle, 'tuf', 'timestamp.json'), `{"pad":"${'x'.repeat(5 * 1024 * 1024)}"}`);
    await assertRefused(await deviceV1(), bundle, 16, /timestamp\.json.*bytes/);
  });

  test('timestamp.json missing: 14', async () => {
    const bundle = await bundleV2();
    await fs.rm(path.join(bundle, 'tuf', 'timestamp.json'));
    await assertRefused(await deviceV1(), bundle, 14, /timestamp\.json: missing/);
  });
});

describe('hostile media: rollback, freeze and mix-and-match', () => {
  test('freeze: a bundle exported before the one the device installed (still valid, older versions): 18, not an attack', async () => {
    const old = await exportTo(factory, factory.v3BootFails);
    const device = await deviceThatTrustsNewMetadata();
    const offered = (await readBundleJson(old, 'timestamp.json')).signed['version'] as number;
    const trusted = (await trustedMetadata(device, 'timestamp.json')).signed['version'];
    assert.ok(offered < trusted);
    await assertRefused(
      device,
      old,
      18,
      new RegExp(
        `^ferry: tuf/timestamp\\.json: this stick is older than the metadata this device trusts \\(timestamp ${offered} < ${trusted}\\): export a fresh stick$`,
      ),
    );
  });

  test('an older stick carrying the target the device runs, or asked for a --force downgrade: 18 (also from aklite-offline and in --json)', async () => {
    const oldSameTarget = await exportTo(factory, factory.v2);
    const oldDowngrade = await exportTo(factory, factory.v1);
    const device = await deviceThatTrustsNewMetadata();
    await assertRefused(device, oldSameTarget, 18, /this stick is older than the metadata this device trusts/);
    await assertRefused(device, oldDowngrade, 18, /this stick is older than the metadata this device trusts/, [
      '--force',
    ]);
    const before = await device.fingerprint();
    const aklite = await akliteOffline('install', '--config', device.configDir, '--src-dir', oldDowngrade, '--json');
    assert.equal(aklite.code, 18, aklite.stderr);
    const answer = JSON.parse(aklite.stdout);
    assert.equal(answer.outcome, 'METADATA_OLDER_THAN_TRUSTED');
    assert.match(answer.message, /\(timestamp \d+ < \d+\): export a fresh stick/);
    assert.equal(await device.fingerprint(), before);
  });

  test('an older timestamp whose signature does not verify is a forgery, not an older stick: 11', async () => {
    const old = await exportTo(factory, factory.v3BootFails);
    const device = await deviceThatTrustsNewMetadata();
    await flipSignatureBit(old, 'timestamp.json');
    await assertRefused(device, old, 11, /timestamp\.json: signature check failed/);
  });

  test('snapshot version rollback under a newer timestamp: 11', async () => {
    const device = await deviceThatTrustsNewMetadata();
    const trusted = await trustedMetadata(device, 'snapshot.json');
    const bundle = await exportTo(factory, factory.v3BootFails);
    const older = trusted.signed.version - 1;
    await resign(bundle, 'snapshot.json', await keys('snapshot'), (signed) => ({ ...signed, version: older }));
    await resign(bundle, 'timestamp.json', await keys('timestamp'), (signed) => ({
      ...signed,
      meta: { 'snapshot.json': { version: older } },
    }));
    await assertRefused(
      device,
      bundle,
      11,
      /version check failed: New snapshot version \d+ is less than current version \d+/,
    );
  });

  test('targets version rollback under a newer snapshot: 11', async () => {
    const device = await deviceThatTrustsNewMetadata();
    const trusted = await trustedMetadata(device, 'targets.json');
    const bundle = await exportTo(factory, factory.v3BootFails);
    const older = trusted.signed.version - 1;
    await resign(bundle, 'targets.json', await keys('targets'), (signed) => ({ ...signed, version: older }));
    await resign(bundle, 'snapshot.json', await keys('snapshot'), (signed) => ({
      ...signed,
      meta: { 'targets.json': { version: older } },
    }));
    await assertRefused(
      device,
      bundle,
      11,
      /version check failed: New version \d+ of targets\.json is less than current version \d+/,
    );
  });

  test('mix and match: snapshot names another targets version than the one on the stick: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'snapshot.json', await keys('snapshot'), (signed) => ({
      ...signed,
      meta: { 'targets.json': { version: 1 } },
    }));
    await assertRefused(
      await deviceV1(),
      bundle,
      11,
      /targets\.json: version check failed: Version \d+ of targets does not match snapshot version 1/,
    );
  });
});

describe('hostile media: root rotation', () => {
  test('a valid chain 1 -> 2 -> 3 (each signed by the old and the new root key) is accepted; the device trusts 3', async () => {
    const bundle = await bundleV2();
    const [k1] = await keys('root');
    const k2 = newKey();
    const k3 = newKey();
    await addRoot(bundle, [k1!, k2], (root) => setRoleKeys(root, 'root', [k2], 1));
    await addRoot(bundle, [k2, k3], (root) => setRoleKeys(root, 'root', [k3], 1));
    const device = await deviceV1();
    const result = await cli('install', '--config', device.configDir, '--src-dir', bundle);
    assert.equal(result.code, 100, result.stderr);
    const trusted = await trustedMetadata(device, 'root.json');
    assert.equal(trusted.signed.version, 3);
  });

  test('a broken link: 3.root.json not signed by the keys of version 2: 11', async () => {
    const bundle = await bundleV2();
    const [k1] = await keys('root');
    const k2 = newKey();
    const k3 = newKey();
    await addRoot(bundle, [k1!, k2], (root) => setRoleKeys(root, 'root', [k2], 1));
    await addRoot(bundle, [k3], (root) => setRoleKeys(root, 'root', [k3], 1));
    await assertRefused(
      await deviceV1(),
      bundle,
      11,
      /root\.json: signature check failed: root was signed by 0\/1 keys/,
    );
  });

  test('a new root not signed by the new key itself: 11', async () => {
    const bundle = await bundleV2();
    const [k1] = await keys('root');
    await addRoot(bundle, [k1!], (root) => setRoleKeys(root, 'root', [newKey()], 1));
    await assertRefused(await deviceV1(), bundle, 11, /root\.json: signature check failed/);
  });

  test('root rollback: a device that trusts root 2 refuses metadata signed by a key root 2 revoked, even with 1.root.json alone: 11', async () => {
    const device = await deviceV1();
    const rotated = await bundleV2();
    const [oldTimestampKey] = await keys('timestamp');
    const replacement = newKey();
    await addRoot(rotated, await keys('root'), (root) => setRoleKeys(root, 'timestamp', [replacement], 1));
    await resign(rotated, 'timestamp.json', [replacement]);
    assert.equal((await cli('install', '--config', device.configDir, '--src-dir', rotated)).code, 100);
    assert.equal((await cli('sim', 'reboot', device.dir)).code, 0);
    assert.equal((await cli('run', '--config', device.configDir)).code, 0);
    // An older stick: only 1.root.json, a timestamp signed by the key root 2 replaced.
    const old = await exportTo(factory, factory.v3BootFails);
    await resign(old, 'timestamp.json', [oldTimestampKey!], (signed) => ({
      ...signed,
      version: signed['version'] + 100,
    }));
    await assertRefused(device, old, 11, /timestamp\.json: signature check failed: timestamp was signed by 0\/1 keys/);
  });

  test('a key revoked by a new root can no longer sign targets: 11', async () => {
    const bundle = await bundleV2();
    await addRoot(bundle, await keys('root'), (root) => setRoleKeys(root, 'targets', [newKey()], 1));
    await assertRefused(
      await deviceV1(),
      bundle,
      11,
      /targets\.json: signature check failed: targets was signed by 0\/1 keys/,
    );
  });
});

describe('hostile media: bundle-targets.json and the target', () => {
  test('bundle-targets.json missing: 14', async () => {
    const bundle = await bundleV2();
    await fs.rm(path.join(bundle, 'tuf', 'bundle-targets.json'));
    await assertRefused(await deviceV1(), bundle, 14, /bundle-targets\.json is missing/);
  });

  test('bundle-targets.json unsigned: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', []);
    await assertRefused(await deviceV1(), bundle, 11, /bundle-targets\.json: 0 valid signature/);
  });

  test('bundle-targets.json signed by the timestamp key: 11', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', await keys('timestamp'));
    await assertRefused(await deviceV1(), bundle, 11, /bundle-targets\.json: 0 valid signature/);
  });

  test('a prod bundle without its offline countersignatures on a ci device: 15 (the wrong stick), not 11', async () => {
    const keysDir = path.join(await tempDir('offline-keys'), 'keys');
    const offlineFactory = await buildFactory();
    await addOfflineTargetsKeys(offlineFactory.repo, { count: 1, threshold: 1, outDir: keysDir });
    const bundle = await exportTo(offlineFactory, offlineFactory.v2, { type: 'prod' });
    await assertRefused(
      await makeDevice(offlineFactory, offlineFactory.v1),
      bundle,
      15,
      /^ferry: bundle-targets\.json: this is a "prod" bundle; this non-production device takes only "ci" bundles$/,
    );
    // On a production device the same stick is what it is: not countersigned yet.
    await assertRefused(
      await makeDevice(offlineFactory, offlineFactory.v1, { production: true }),
      bundle,
      11,
      /needs 1 signature\(s\) of offline targets keys, it has 0/,
    );
  });

  test('a prod bundle on a ci device: 15', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', await keys('targets'), (signed) => ({
      ...signed,
      'x-ferry-bundle': { ...signed['x-ferry-bundle'], type: 'prod' },
    }));
    await assertRefused(await deviceV1(), bundle, 15, /"prod" bundle/);
  });

  test('a bundle for another tag: 15', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', await keys('targets'), (signed) => ({
      ...signed,
      'x-ferry-bundle': { ...signed['x-ferry-bundle'], tag: 'devel' },
    }));
    await assertRefused(await deviceV1(), bundle, 15, /bundle is for tag "devel"/);
  });

  test('bundle-targets.json naming a target that targets.json lacks: 6', async () => {
    const bundle = await bundleV2();
    await resign(bundle, 'bundle-targets.json', await keys('targets'), (signed) => ({
      ...signed,
      'x-ferry-bundle': { ...signed['x-ferry-bundle'], targets: ['sim-lmp-999'] },
    }));
    await assertRefused(await deviceV1(), bundle, 6, /sim-lmp-999: not in targets\.json/);
  });

  test('a target that bundle-targets.json does not name, asked for with --target: 20', async () => {
    const bundle = await bundleV2();
    await assertRefused(await deviceV1(), bundle, 20, /target "sim-lmp-3" is not in this bundle/, [
      '--target',
      factory.v3BootFails,
    ]);
  });

  test('a bundle for another board: 7', async () => {
    const bundle = await exportTo(factory, factory.otherBoard);
    await assertRefused(await deviceV1(), bundle, 7, /no target in the bundle is for hardware id "ferry-sim"/);
  });

  test('targets.json entry whose hash is not an OSTree commit: 6', async () => {
    const bundle = await bundleV2();
    const targets = await readBundleJson(bundle, 'targets.json');
    assert.ok((targets.signed['targets'] as Record<string, unknown>)[factory.v2]);
    await resign(bundle, 'targets.json', await keys('targets'), (signed) => {
      signed['targets'][factory.v2].hashes.sha256 = 'not-a-commit';
      return signed;
    });
    await assertRefused(await deviceV1(), bundle, 6, /hashes\.sha256 is not an OSTree commit checksum/);
  });
});
