import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FerryError } from '../../src/errors.js';
import { signBundleTargets } from '../../src/tuf/bundle-targets.js';
import { generateSigningKey, type SigningKey } from '../../src/tuf/keys.js';
import { serializeMetadata, signRole, type RoleName } from '../../src/tuf/sign-metadata.js';
import { targetFromMetadata } from '../../src/tuf/target.js';
import { discardScratch, verifyBundleMetadata } from '../../src/tuf/verify-metadata.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * verifyBundleMetadata on metadata made here (no factory, no OSTree): what it gives for a targets.json of many
 * targets, what it refuses, and that it reads the large file once.
 */

const TARGETS = 2000;
const EXPIRES = '2030-01-01T00:00:00Z';
const keys = Object.fromEntries(
  (['root', 'targets', 'snapshot', 'timestamp'] as const).map((role) => [role, generateSigningKey().key]),
) as Record<RoleName, SigningKey>;

const entry = (i: number) => ({
  length: 0,
  hashes: { sha256: i.toString(16).padStart(64, '0') },
  custom: { targetFormat: 'OSTREE', version: String(i), hardwareIds: ['board'], tags: ['main'], name: 'os' },
});

function targetsSigned(): Record<string, unknown> {
  const targets: Record<string, unknown> = {};
  for (let i = 1; i <= TARGETS; i++) targets[`os-${i}`] = entry(i);
  return { _type: 'targets', spec_version: '1.0.31', version: 1, expires: EXPIRES, targets };
}

/** Writes a stick's tuf/ (root 1, the four roles, bundle-targets.json naming os-7 and os-1999) and a trusted dir. */
async function writeMetadata(dir: string, targets = targetsSigned()): Promise<{ tuf: string; trusted: string }> {
  const tuf = path.join(dir, 'tuf');
  const trusted = path.join(dir, 'trusted');
  await fs.mkdir(tuf, { recursive: true });
  await fs.mkdir(trusted, { recursive: true });
  const role = (name: RoleName) => ({ keyids: [keys[name].keyId], threshold: 1 });
  const root = signRole(
    'root',
    {
      _type: 'root',
      spec_version: '1.0.31',
      version: 1,
      expires: EXPIRES,
      consistent_snapshot: false,
      keys: Object.fromEntries(Object.values(keys).map((key) => [key.keyId, key.publicKey])),
      roles: { root: role('root'), targets: role('targets'), snapshot: role('snapshot'), timestamp: role('timestamp') },
    },
    [keys.root],
  );
  const common = { spec_version: '1.0.31', version: 1, expires: EXPIRES };
  const files: Record<string, object> = {
    '1.root.json': root,
    'targets.json': signRole('targets', targets, [keys.targets]),
    'snapshot.json': signRole('snapshot', { _type: 'snapshot', ...common, meta: { 'targets.json': { version: 1 } } }, [
      keys.snapshot,
    ]),
    'timestamp.json': signRole(
      'timestamp',
      { _type: 'timestamp', ...common, meta: { 'snapshot.json': { version: 1 } } },
      [keys.timestamp],
    ),
    'bundle-targets.json': signBundleTargets(
      {
        _type: 'bundle',
        expires: EXPIRES,
        version: 1,
        'x-ferry-bundle': { type: 'ci', tag: 'main', targets: ['os-7', 'os-1999'] },
      },
      [keys.targets],
    ),
  };
  for (const [name, document] of Object.entries(files)) {
    await fs.writeFile(path.join(tuf, name), serializeMetadata(document));
  }
  await fs.writeFile(path.join(trusted, 'root.json'), serializeMetadata(root));
  return { tuf, trusted };
}

const now = new Date('2026-11-30T00:00:00Z');
let work: string;
before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-verify-metadata-'));
});
after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

async function refusal(run: () => Promise<unknown>): Promise<FerryError> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof FerryError, String(error));
    return error;
  }
  assert.fail('verified');
}

describe('verifyBundleMetadata', () => {
  test('gives the named targets as targets.json has them, and leaves the trusted set as it was', async () => {
    const { tuf, trusted } = await writeMetadata(path.join(work, 'good'));
    const before = await hashTree(trusted);
    const verified = await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: tuf, now });
    try {
      assert.equal(verified.rootVersion, 1);
      assert.deepEqual(verified.unusable, []);
      assert.deepEqual(
        verified.targets,
        [7, 1999].map((i) => targetFromMetadata(`os-${i}`, entry(i).hashes, entry(i).custom)),
      );
      assert.deepEqual((await fs.readdir(verified.scratchDir)).sort(), [
        'root.json',
        'snapshot.json',
        'targets.json',
        'timestamp.json',
      ]);
      assert.deepEqual(
        await fs.readFile(path.join(verified.scratchDir, 'targets.json')),
        await fs.readFile(path.join(tuf, 'targets.json')),
      );
    } finally {
      await discardScratch(verified);
    }
    assert.equal(await hashTree(trusted), before);
  });

  test('targets.json is parsed once', async () => {
    const { tuf, trusted } = await writeMetadata(path.join(work, 'parsed-once'));
    const size = (await fs.stat(path.join(tuf, 'targets.json'))).size;
    const parse = JSON.parse;
    let parsed = 0;
    JSON.parse = function counted(text: string, reviver?: Parameters<typeof parse>[1]) {
      if (typeof text === 'string' && text.length === size) parsed++;
      return parse(text, reviver);
    };
    try {
      await discardScratch(await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: tuf, now }));
    } finally {
      JSON.parse = parse;
    }
    assert.equal(parsed, 1);
  });

  test("a target's hash changed after signing: refused as a bad signature (11)", async () => {
    const { tuf, trusted } = await writeMetadata(path.join(work, 'changed-hash'));
    const file = path.join(tuf, 'targets.json');
    const document = JSON.parse(await fs.readFile(file, 'utf8')) as { signed: ReturnType<typeof targetsSigned> };
    (document.signed['targets'] as Record<string, ReturnType<typeof entry>>)['os-1500']!.hashes.sha256 = 'f'.repeat(64);
    await fs.writeFile(file, serializeMetadata(document));
    const error = await refusal(() => verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: tuf, now }));
    assert.equal(error.outcome, 'SECURITY_ERROR');
    assert.match(error.message, /^tuf\/targets\.json: signature check failed: targets was signed by 0\/1 keys$/);
  });

  test('targets.json signed with an expiry tuf-js would take as never expiring: refused as malformed (16)', async () => {
    const { tuf, trusted } = await writeMetadata(path.join(work, 'not-a-date'), {
      ...targetsSigned(),
      expires: 'not-a-date',
    });
    const error = await refusal(() => verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: tuf, now }));
    assert.equal(error.outcome, 'METADATA_MALFORMED');
    assert.equal(error.message, 'tuf/targets.json: expires "not-a-date" is not YYYY-MM-DDTHH:MM:SSZ');
  });

  test('targets.json that is not JSON: refused as malformed (16), naming it', async () => {
    const { tuf, trusted } = await writeMetadata(path.join(work, 'not-json'));
    await fs.writeFile(path.join(tuf, 'targets.json'), '{"signed": ');
    const error = await refusal(() => verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: tuf, now }));
    assert.equal(error.outcome, 'METADATA_MALFORMED');
    assert.match(error.message, /^tuf\/targets\.json: .*JSON input/);
  });
});
