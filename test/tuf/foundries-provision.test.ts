import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { loadFoundriesTrust, saveFoundriesTrust } from '../../src/device/foundries-trust-file.js';
import { FerryError } from '../../src/errors.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import { planFoundriesRootProvision } from '../../src/tuf/foundries/fio-provision.js';
import { tempDir } from '../support/factory.js';
import {
  FioStick,
  fioFixtureKeys,
  newFioKey,
  serializeFio,
  setFioRoleKeys,
  signFio,
  type FioRoleName,
  type FioSigningKey,
} from '../support/foundries-signer.js';

/**
 * How a device learns the Foundries root it trusts (planFoundriesRootProvision, pure) and how it keeps it
 * (foundries-trust-file): the first root as given if it carries its own signatures, then only along the chain.
 */

let fixture: FioStick;
let keys: Record<FioRoleName, FioSigningKey>;
let root1: Uint8Array;
before(async () => {
  fixture = await FioStick.fixture();
  keys = await fioFixtureKeys();
  root1 = fixture.files.get('1.root.json')!;
});

const file = (name: string, bytes: Uint8Array) => ({ name, bytes });

/** Roots 2 and 3 of the fixture, each rotating the root key, each signed by the old and the new root key. */
function rotatedTwice(): { root2: Uint8Array; root3: Uint8Array } {
  const stick = fixture.clone();
  const second = newFioKey();
  const third = newFioKey();
  stick.addRoot([keys.root, second], (signed) => setFioRoleKeys(signed, 'root', [second], 1));
  stick.addRoot([second, third], (signed) => setFioRoleKeys(signed, 'root', [third], 1));
  return { root2: stick.files.get('2.root.json')!, root3: stick.files.get('3.root.json')! };
}

function assertRefused(run: () => unknown, exitCode: number, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof FerryError, String(error));
    assert.equal(OUTCOMES[error.outcome].exitCode, exitCode, error.message);
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
}

describe('planFoundriesRootProvision', () => {
  test('the first root is taken as given when it carries its own signatures', () => {
    const plan = planFoundriesRootProvision(undefined, [file('1.root.json', root1)]);
    assert.deepEqual(plan, { action: 'trust', root: root1, version: 1, from: undefined });
  });

  test('several versions at once are walked in order, whatever order they are given in', () => {
    const { root2, root3 } = rotatedTwice();
    const plan = planFoundriesRootProvision(root1, [file('3.root.json', root3), file('2.root.json', root2)]);
    assert.equal(plan.action, 'trust');
    assert.equal(plan.version, 3);
    assert.equal(plan.action === 'trust' ? plan.from : undefined, 1);
    assert.equal(plan.action === 'trust' ? plan.root : undefined, root3);
  });

  test('a version skipped is refused (28): the walk needs every step', () => {
    const { root3 } = rotatedTwice();
    assertRefused(
      () => planFoundriesRootProvision(root1, [file('3.root.json', root3)]),
      28,
      /^3\.root\.json: root version 3 does not follow version 1/,
    );
  });

  test('a new root signed by the new key only is refused (28): the old threshold must sign it too', () => {
    const stick = fixture.clone();
    const next = newFioKey();
    stick.addRoot([next], (signed) => setFioRoleKeys(signed, 'root', [next], 1));
    assertRefused(
      () => planFoundriesRootProvision(root1, [file('2.root.json', stick.files.get('2.root.json')!)]),
      28,
      /^2\.root\.json: does not chain from root version 1: .*valid signature/,
    );
  });

  test('the trusted root again changes nothing; an older or another one of its version is refused (28)', () => {
    const { root2 } = rotatedTwice();
    assert.deepEqual(planFoundriesRootProvision(root2, [file('2.root.json', root2)]), {
      action: 'already-trusted',
      version: 2,
    });
    assertRefused(
      () => planFoundriesRootProvision(root2, [file('1.root.json', root1)]),
      28,
      /root version 1 is not the root this device trusts \(version 2\)/,
    );
  });

  test('a root of the ferry format, or no root at all, is not a Foundries root (26)', () => {
    const ferryRoot = Buffer.from(JSON.stringify({ signed: { _type: 'root', version: 1 }, signatures: [] }));
    assertRefused(() => planFoundriesRootProvision(undefined, [file('root.json', ferryRoot)]), 26, /ferry format/);
    assertRefused(
      () => planFoundriesRootProvision(undefined, [file('timestamp.json', fixture.files.get('timestamp.json')!)]),
      26,
      /not a root metadata file of the Foundries format/,
    );
  });

  test('a first root whose keys did not sign it is refused (26)', () => {
    const other = newFioKey();
    const signed = structuredClone(fixture.json('1.root.json').signed);
    const forged = serializeFio(signFio(signed, [other]));
    assertRefused(() => planFoundriesRootProvision(undefined, [file('1.root.json', forged)]), 26, /^1\.root\.json: /);
  });
});

describe('the trusted Foundries state on the device', () => {
  test('saved and loaded again as it was', async () => {
    const dir = path.join(await tempDir('fio-trust'), 'tuf-foundries');
    assert.deepEqual(await loadFoundriesTrust(dir), { state: undefined, recovered: [] });
    await saveFoundriesTrust(dir, { root: root1, versions: { timestamp: 3, snapshot: 3, targets: 2 } });
    const loaded = await loadFoundriesTrust(dir);
    assert.deepEqual(Buffer.from(loaded.state!.root), Buffer.from(root1));
    assert.deepEqual(loaded.state!.versions, { timestamp: 3, snapshot: 3, targets: 2 });
    assert.deepEqual(loaded.recovered, []);
    // A new root alone keeps the versions accepted before.
    await saveFoundriesTrust(dir, { root: root1 });
    assert.deepEqual((await loadFoundriesTrust(dir)).state!.versions, { timestamp: 3, snapshot: 3, targets: 2 });
  });

  test('an unreadable versions file is moved aside and never trusted; the root stays', async () => {
    const dir = path.join(await tempDir('fio-trust'), 'tuf-foundries');
    await saveFoundriesTrust(dir, { root: root1, versions: { timestamp: 3, snapshot: 3, targets: 3 } });
    await fs.writeFile(path.join(dir, 'versions.json'), '{"timestamp": -1, "snapshot": 3, "targets": 3}');
    const loaded = await loadFoundriesTrust(dir);
    assert.deepEqual(Buffer.from(loaded.state!.root), Buffer.from(root1));
    assert.equal(loaded.state!.versions, undefined);
    assert.match(loaded.recovered.join('\n'), /versions\.json was unreadable .* moved to .*versions\.json\.broken/);
    assert.equal(
      await fs.readFile(path.join(dir, 'versions.json.broken'), 'utf8'),
      '{"timestamp": -1, "snapshot": 3, "targets": 3}',
    );
  });

  test('a root file that is not a Foundries root is moved aside: the device trusts none', async () => {
    const dir = path.join(await tempDir('fio-trust'), 'tuf-foundries');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'root.json'), fixture.files.get('timestamp.json')!);
    const loaded = await loadFoundriesTrust(dir);
    assert.equal(loaded.state, undefined);
    assert.match(loaded.recovered.join('\n'), /root\.json was unreadable/);
    await assert.rejects(fs.access(path.join(dir, 'root.json')));
  });
});
