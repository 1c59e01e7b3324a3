import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { AppsDir } from '../../src/apps/format/apps-dir.js';
import { digestOf, hexOf } from '../../src/apps/format/digest.js';
import { verifyApps } from '../../src/apps/format/verify-apps.js';
import { OUTCOMES } from '../../src/exit-codes.js';
import type { FactoryRepo } from '../../src/repo/factory-repo.js';
import { buildFioctlFactory, type FioctlFactory } from '../support/fioctl-factory.js';
import { rotateRoleKey } from '../../src/repo/rotate-keys.js';
import { fioCanonicalJson } from '../../src/tuf/foundries/fio-canonical.js';
import { fioKeyIdOf } from '../../src/tuf/foundries/fio-keys.js';
import { verifyFoundriesStick } from '../../src/tuf/foundries/fio-verify-stick.js';
import { detectStickFormat } from '../../src/tuf/foundries/stick-format.js';
import { readStickMetadataFiles } from '../../src/tuf/stick-files.js';
import { cli } from '../support/cli.js';
import { exportTo, TAG, tempDir } from '../support/factory.js';
import { FIO_FIXTURE, FIO_FIXTURE_TUF, FioStick, fioFixtureKeys } from '../support/foundries-signer.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * A factory made with `repo init --format fioctl` exports sticks in the Foundries format: they verify with ferry's
 * own reader of that format, their apps sit where aktualizr-lite's app store has them (apps/apps/ beside
 * apps/blobs/), and their files have the shape of the fixture stick Foundries' own tools wrote, field by field.
 */

type Json = Record<string, any>;

let repo: FactoryRepo;
let targets: FioctlFactory['targets'];
let appDigest: string;

before(async () => {
  ({ repo, targets, appDigest } = await buildFioctlFactory());
});

const readJson = async (file: string): Promise<Json> => JSON.parse(await fs.readFile(file, 'utf8'));
const fixture = (name: string) => readJson(path.join(FIO_FIXTURE_TUF, name));
const keysOf = (value: object) => Object.keys(value).sort();

/** The same fields, of the same JSON types, in a signature entry of ours and of the fixture's. */
function assertSignatureShape(ours: Json, theirs: Json, file: string): void {
  assert.deepEqual(keysOf(ours), keysOf(theirs), `${file}: signature fields`);
  assert.equal(ours['method'], theirs['method'], `${file}: method`);
  assert.match(ours['keyid'], /^[0-9a-f]{64}$/, `${file}: keyid`);
  // Standard padded base64 of a 64-byte ed25519 signature, as the fixture's.
  for (const sig of [ours['sig'], theirs['sig']]) {
    assert.equal(Buffer.from(sig, 'base64').length, 64, `${file}: sig is 64 bytes`);
    assert.equal(Buffer.from(sig, 'base64').toString('base64'), sig, `${file}: sig is standard base64`);
  }
}

/** The envelope and the `signed` fields a file shares with the fixture's file of the same name. */
function assertEnvelopeShape(ours: Json, theirs: Json, file: string): void {
  assert.deepEqual(keysOf(ours), keysOf(theirs), `${file}: top-level fields`);
  assert.equal(ours['signed']['_type'], theirs['signed']['_type'], `${file}: _type`);
  assert.deepEqual(keysOf(ours['signed']), keysOf(theirs['signed']), `${file}: fields of signed`);
  assert.equal(typeof ours['signed']['version'], 'number');
  assert.match(ours['signed']['expires'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(ours['signatures'].length, 1, `${file}: one signature, by the role's one key`);
  assertSignatureShape(ours['signatures'][0], theirs['signatures'][0], file);
}

/** A meta entry (timestamp's of the snapshot, snapshot's of targets): the same fields and hash names. */
function assertMetaShape(ours: Json, theirs: Json, where: string): void {
  assert.deepEqual(keysOf(ours), keysOf(theirs), `${where}: fields`);
  if (theirs['hashes'] !== undefined) {
    assert.deepEqual(keysOf(ours['hashes']), keysOf(theirs['hashes']), `${where}: hash names`);
    for (const [name, hash] of Object.entries(ours['hashes']))
      assert.match(hash as string, name === 'sha512' ? /^[0-9a-f]{128}$/ : /^[0-9a-f]{64}$/);
  }
}

describe('export --format fioctl', () => {
  test('writes a Foundries stick that verifies with ferry reader of that format, its apps in aklite layout', async () => {
    const stick = await exportTo({ repo }, targets.v2, { format: 'fioctl' });
    const files = await readStickMetadataFiles(path.join(stick, 'tuf'));
    assert.equal(detectStickFormat(files), 'foundries');
    // fioctl writes every root version from 1, then the three roles; bundle-targets.json names what it carries.
    assert.deepEqual([...files.keys()].sort(), (await fs.readdir(FIO_FIXTURE_TUF)).sort());

    const trustedRoot = await fs.readFile(path.join(repo.tufDir, '1.root.json'));
    const verified = verifyFoundriesStick({ trusted: { root: trustedRoot }, files, now: new Date() });
    assert.deepEqual(verified.unusable, []);
    assert.deepEqual(
      verified.targets.map((target) => target.name),
      [targets.v2],
    );
    assert.equal(verified.bundle.type, 'ci');
    assert.equal(verified.bundle.tag, TAG);
    const target = verified.targets[0]!;
    assert.equal(target.apps['hello']?.uri.endsWith(appDigest), true);

    // aktualizr-lite's app store: apps/apps/<app>/<hash>/… beside apps/blobs/sha256/.
    const apps = new AppsDir(path.join(stick, 'apps'), undefined, 'foundries');
    const appDir = path.join(stick, 'apps', 'apps', 'hello', hexOf(appDigest));
    assert.equal(apps.appDir('hello', appDigest), appDir);
    for (const name of ['uri', 'manifest.json']) await fs.access(path.join(appDir, name));
    // aklite-offline's offline registry fetches the app manifest and the compose archive from the blob store alone.
    const manifest = JSON.parse(await fs.readFile(path.join(appDir, 'manifest.json'), 'utf8'));
    // compose-publish's form, the only one aklite reads: the version annotation, the archive as layers[0], field for
    // field as its OCI manifest builder writes them, and no image list.
    assert.deepEqual(Object.keys(manifest), ['schemaVersion', 'mediaType', 'config', 'layers', 'annotations']);
    assert.deepEqual(manifest.annotations, { 'compose-app': 'v1' });
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0].mediaType, 'application/tar+gzip');
    assert.deepEqual(manifest.config, {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digestOf(''),
      size: 0,
    });
    for (const digest of [appDigest, manifest.layers[0].digest as string])
      assert.ok(await apps.blobs.verify(digest), `apps/blobs/sha256 holds ${digest}`);
    // aklite-offline compares the uri file with the target's uri byte for byte: no newline after it.
    assert.equal(await fs.readFile(path.join(appDir, 'uri'), 'utf8'), target.apps['hello']?.uri);
    assert.ok(
      (await fs.readdir(appDir)).some((name) => /^[0-9a-f]{64}\.tgz$/.test(name)),
      'the compose archive',
    );
    assert.ok((await fs.readdir(path.join(stick, 'apps', 'blobs', 'sha256'))).length > 0);
    assert.deepEqual((await fs.readdir(path.join(stick, 'apps'))).sort(), ['apps', 'blobs']);
    const read = await verifyApps(apps, target.apps, 'apps/');
    assert.deepEqual(
      read.map((app) => app.name),
      ['hello'],
    );
    // ferry's own layout would not find the app there.
    await assert.rejects(verifyApps(new AppsDir(path.join(stick, 'apps')), target.apps, 'apps/'));

    // verify and show read it too.
    const checked = await cli('verify', stick, '--trusted-root', path.join(repo.tufDir, '1.root.json'), '--json');
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(JSON.parse(checked.stdout).targets[0].name, targets.v2);
    const shown = await cli('show', stick);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /signatures: every threshold is met/);
    assert.match(shown.stdout, /app hello:/);
  });

  test("a compose-publish app's images are followed from the signed compose file: a wrong index.json or a missing one is refused", async () => {
    const stick = await exportTo({ repo }, targets.v2);
    const apps = new AppsDir(path.join(stick, 'apps'), undefined, 'foundries');
    const target = verifyFoundriesStick({
      trusted: { root: await fs.readFile(path.join(repo.tufDir, '1.root.json')) },
      files: await readStickMetadataFiles(path.join(stick, 'tuf')),
      now: new Date(),
    }).targets[0]!;
    const [app] = await verifyApps(apps, target.apps, 'apps/');
    // The manifest lists no image; the one the compose file pins is read through its index.json all the same.
    assert.equal(app!.manifest.form, 'compose-app');
    assert.equal(app!.images.length, 1);
    const image = app!.images[0]!;
    const index = path.join(apps.imageDir('hello', appDigest, image.ref), 'index.json');
    const original = await fs.readFile(index, 'utf8');

    const other = JSON.parse(original);
    other.manifests[0].digest = digestOf('another manifest');
    await fs.writeFile(index, JSON.stringify(other));
    await assert.rejects(verifyApps(apps, target.apps, 'apps/'), (error: any) => {
      assert.equal(error.outcome, 'IMAGE_MANIFEST_MISMATCH');
      assert.match(error.message, /index\.json does not name manifest sha256:/);
      return true;
    });

    await fs.rm(index);
    await assert.rejects(verifyApps(apps, target.apps, 'apps/'), (error: any) => {
      assert.equal(error.outcome, 'CONTENT_MISSING');
      return true;
    });
  });

  test('its files have the shape of the fixture Foundries tools wrote, field by field', async () => {
    const stick = await exportTo({ repo }, targets.v1);
    const tuf = path.join(stick, 'tuf');
    const ours = async (name: string) => readJson(path.join(tuf, name));

    for (const name of ['1.root.json', 'timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json'])
      assertEnvelopeShape(await ours(name), await fixture(name), name);

    // Every metadata file but bundle-targets.json is written in aktualizr's canonical form, as the generator does:
    // the hashes another role names are of those bytes.
    for (const name of ['1.root.json', 'timestamp.json', 'snapshot.json', 'targets.json']) {
      const bytes = await fs.readFile(path.join(tuf, name), 'utf8');
      assert.equal(fioCanonicalJson(JSON.parse(bytes)), bytes, `${name} is canonical`);
    }

    const root = (await ours('1.root.json'))['signed'];
    const theirRoot = (await fixture('1.root.json'))['signed'];
    assert.deepEqual(keysOf(root['roles']), keysOf(theirRoot['roles']));
    for (const role of Object.keys(root['roles'])) {
      assert.deepEqual(keysOf(root['roles'][role]), keysOf(theirRoot['roles'][role]), `role ${role}`);
      for (const keyId of root['roles'][role]['keyids']) assert.ok(root['keys'][keyId], `key ${keyId} of ${role}`);
    }
    const theirKey = Object.values(theirRoot['keys'])[0] as Json;
    for (const [keyId, key] of Object.entries(root['keys']) as Array<[string, Json]>) {
      assert.deepEqual(keysOf(key), keysOf(theirKey));
      assert.equal(key['keytype'], 'ED25519');
      assert.deepEqual(keysOf(key['keyval']), keysOf(theirKey['keyval']));
      assert.match(key['keyval']['public'], /^[0-9A-F]{64}$/, 'upper-case hex, as aktualizr writes it');
      // aktualizr's generator's key id rule, which the fixture's ids follow too.
      assert.equal(keyId, fioKeyIdOf(key['keyval']['public']));
    }
    for (const [keyId, key] of Object.entries(theirRoot['keys']) as Array<[string, Json]>)
      assert.equal(keyId, fioKeyIdOf(key['keyval']['public']));

    const timestamp = await ours('timestamp.json');
    const theirTimestamp = await fixture('timestamp.json');
    assert.deepEqual(keysOf(timestamp['signed']['meta']), keysOf(theirTimestamp['signed']['meta']));
    assertMetaShape(
      timestamp['signed']['meta']['snapshot.json'],
      theirTimestamp['signed']['meta']['snapshot.json'],
      'timestamp meta',
    );
    assert.equal(
      timestamp['signed']['meta']['snapshot.json']['length'],
      (await fs.stat(path.join(tuf, 'snapshot.json'))).size,
    );
    const snapshot = await ours('snapshot.json');
    const theirSnapshot = await fixture('snapshot.json');
    assert.deepEqual(keysOf(snapshot['signed']['meta']), keysOf(theirSnapshot['signed']['meta']));
    for (const name of Object.keys(theirSnapshot['signed']['meta']))
      assertMetaShape(snapshot['signed']['meta'][name], theirSnapshot['signed']['meta'][name], `snapshot ${name}`);

    const entry = (await ours('targets.json'))['signed']['targets'][targets.v1];
    const theirEntry = Object.values((await fixture('targets.json'))['signed']['targets'])[0] as Json;
    assert.deepEqual(keysOf(entry), keysOf(theirEntry));
    assert.deepEqual(keysOf(entry['hashes']), keysOf(theirEntry['hashes']));
    for (const field of Object.keys(theirEntry['custom'])) assert.ok(field in entry['custom'], `custom.${field}`);
    assert.equal(entry['custom']['targetFormat'], 'OSTREE');

    const bundle = (await ours('bundle-targets.json'))['signed'];
    const theirBundle = (await fixture('bundle-targets.json'))['signed'];
    assert.deepEqual(keysOf(bundle['x-fio-offline-bundle']), keysOf(theirBundle['x-fio-offline-bundle']));
    assert.deepEqual(bundle['x-fio-offline-bundle'], { type: 'ci', tag: TAG, targets: [targets.v1] });
  });

  test('keys rotate, --tuf-only and bundle sign keep the format: a device at root 1 walks to root 2', async () => {
    const stick = await exportTo({ repo }, targets.v2);
    const rotated = await rotateRoleKey(repo, 'root');
    assert.equal(rotated.rootVersion, 2);
    await exportTo({ repo }, targets.v2, { destination: stick, mode: 'tuf-only' });
    const files = await readStickMetadataFiles(path.join(stick, 'tuf'));
    assert.ok(files.has('2.root.json'));
    const verified = verifyFoundriesStick({
      trusted: { root: await fs.readFile(path.join(repo.tufDir, '1.root.json')) },
      files,
      now: new Date(),
    });
    assert.equal(verified.rootVersion, 2);
    assert.deepEqual(
      rotated.keyIds,
      (await readJson(path.join(stick, 'tuf', '2.root.json')))['signed']['roles']['root']['keyids'],
    );

    // A second signature by the factory's own targets key is no new signature; the bundle still verifies.
    const keyFile = path.join(repo.keys.dir, 'targets', (await fs.readdir(path.join(repo.keys.dir, 'targets')))[0]!);
    const signed = await cli('bundle', 'sign', stick, '--key', keyFile, '--json');
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal(JSON.parse(signed.stdout).added, false);
    const bundleTargets = await readJson(path.join(stick, 'tuf', 'bundle-targets.json'));
    assert.equal(bundleTargets['signatures'].length, 1);
    assert.equal(bundleTargets['signatures'][0].method, 'ed25519');
    // A key the root does not list for targets is refused (58), and the stick is unchanged.
    const stickBefore = await hashTree(stick);
    const snapshotDir = path.join(repo.keys.dir, 'snapshot');
    const snapshotKey = path.join(
      snapshotDir,
      (await fs.readdir(snapshotDir)).find((name) => name.endsWith('.pem'))!,
    );
    const notTargets = await cli('bundle', 'sign', stick, '--key', snapshotKey);
    assert.equal(notTargets.code, OUTCOMES.KEY_NOT_AUTHORIZED.exitCode, notTargets.stderr);
    assert.equal(await hashTree(stick), stickBefore);
  });

  test('--allow-multiple-targets, a delta (--from) and --archive work on a fioctl stick', async () => {
    const stick = await exportTo({ repo }, targets.v1, { format: 'fioctl' });
    await exportTo({ repo }, targets.otherBoard, { destination: stick, mode: 'add-target' });
    const trusted = { root: await fs.readFile(path.join(repo.tufDir, '1.root.json')) };
    const both = verifyFoundriesStick({
      trusted,
      files: await readStickMetadataFiles(path.join(stick, 'tuf')),
      now: new Date(),
    });
    assert.deepEqual(
      both.targets.map((target) => target.name),
      [targets.v1, targets.otherBoard],
    );
    // Each target's app, in the one apps/apps/ tree.
    const apps = new AppsDir(path.join(stick, 'apps'), undefined, 'foundries');
    for (const target of both.targets) await verifyApps(apps, target.apps, 'apps/');

    // fioctl writes no deltas; ferry's delta names its base in x-fio-offline-bundle, which aklite ignores.
    const delta = await exportTo({ repo }, targets.v2, { fromTarget: targets.v1 });
    const verified = verifyFoundriesStick({
      trusted,
      files: await readStickMetadataFiles(path.join(delta, 'tuf')),
      now: new Date(),
    });
    assert.equal(verified.bundle.base?.target, targets.v1);
    const info = (await readJson(path.join(delta, 'tuf', 'bundle-targets.json')))['signed']['x-fio-offline-bundle'];
    assert.deepEqual(info.base, verified.bundle.base);
    const checked = await cli('verify', delta, '--trusted-root', path.join(repo.tufDir, '1.root.json'));
    assert.equal(checked.code, 0, checked.stderr);

    // And as one file: a tar of the same tree, read back through the archive reader.
    const tar = path.join(await tempDir('fioctl-tar'), 'stick.tar');
    await exportTo({ repo }, targets.v1, { destination: tar, archive: 'tar', readBack: true });
    const fromTar = await cli('verify', tar, '--trusted-root', path.join(repo.tufDir, '1.root.json'), '--json');
    assert.equal(fromTar.code, 0, fromTar.stderr);
    assert.equal(JSON.parse(fromTar.stdout).blobsChecked > 0, true);
  });

  test("a delta's base in x-fio-offline-bundle without a target name and a 64-hex commit is refused as malformed", async () => {
    const keys = await fioFixtureKeys();
    for (const base of [
      { target: 'fio-hw-lmp-1' },
      { target: 'fio-hw-lmp-1', commit: 'A'.repeat(64) },
      'fio-hw-lmp-1',
    ]) {
      const forged = await FioStick.fixture();
      forged.resign('bundle-targets.json', [keys.targets], (signed) => ({
        ...signed,
        'x-fio-offline-bundle': { ...signed['x-fio-offline-bundle'], base },
      }));
      assert.throws(
        () =>
          verifyFoundriesStick({
            trusted: { root: forged.files.get('1.root.json')! },
            files: forged.files,
            now: new Date('2026-11-30T00:00:00Z'),
          }),
        (error: any) => error.outcome === 'METADATA_MALFORMED' && /x-fio-offline-bundle\.base/.test(error.message),
      );
    }
  });

  test('repo init --format fioctl records the format and writes a Foundries 1.root.json', async () => {
    const dir = path.join(await tempDir('fioctl-init'), 'repo');
    const made = await cli('repo', 'init', dir, '--format', 'fioctl');
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await readJson(path.join(dir, 'ferry-repo.json')))['metadataFormat'], 'fioctl');
    const root = await readJson(path.join(dir, 'tuf', '1.root.json'));
    assertEnvelopeShape(root, await fixture('1.root.json'), '1.root.json');
    const help = await cli('repo', 'init', '--help');
    assert.match(help.stdout, /--format <format>[\s\S]*fioctl/);
  });

  test('verify and show read the stick Foundries tools wrote as they read an exported one', async () => {
    // A writable copy, with the directories git does not keep (the fixture's README).
    const stick = path.join(await tempDir('fio-fixture'), 'bundle');
    await fs.cp(path.join(FIO_FIXTURE, 'bundle'), stick, { recursive: true });
    await fs.chmod(stick, 0o755);
    for (const dir of [
      'apps',
      ...['tmp', 'extensions', 'state', 'refs/mirrors', 'refs/remotes'].map((d) => `ostree_repo/${d}`),
    ])
      await fs.mkdir(path.join(stick, dir), { recursive: true });
    await fs.chmod(path.join(stick, 'tuf'), 0o755);
    const checked = await cli('verify', stick, '--json');
    assert.equal(checked.code, 0, checked.stderr);
    assert.deepEqual(
      JSON.parse(checked.stdout).targets.map((target: Json) => target.name),
      ['fio-hw-lmp-1', 'fio-hw-lmp-2'],
    );
    const shown = await cli('show', stick);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^type ci, tag main;/);
    assert.match(shown.stdout, /signatures: every threshold is met/);
    // A signature flipped in the copy (bundle-targets.json: no other role hashes it): verify refuses it with the
    // ferry format's code for a bad signature.
    const targetsFile = path.join(stick, 'tuf', 'bundle-targets.json');
    await fs.chmod(targetsFile, 0o644);
    const targetsJson = await readJson(targetsFile);
    const sig = Buffer.from(targetsJson['signatures'][0].sig, 'base64');
    sig[0] = sig[0]! ^ 1;
    targetsJson['signatures'][0].sig = sig.toString('base64');
    await fs.writeFile(targetsFile, JSON.stringify(targetsJson));
    const refused = await cli('verify', stick);
    assert.equal(refused.code, OUTCOMES.SECURITY_ERROR.exitCode, refused.stderr);
    assert.match(
      refused.stderr,
      /^ferry: tuf\/bundle-targets\.json: 0 valid signature\(s\) from targets keys, threshold is 1$/m,
    );
  });

  test('a format other than the factory one, a stick of the other format, or offline keys are refused with 29 and nothing changes', async () => {
    const factoryBefore = await hashTree(repo.dir);
    const dst = path.join(await tempDir('fioctl-refused'), 'stick');
    const refused = await cli('export', '--repo', repo.dir, targets.v1, dst, '--tag', TAG, '--format', 'ferry');
    assert.equal(refused.code, 29, refused.stderr);
    assert.match(refused.stderr, /^ferry: .*fioctl format/m);
    assert.equal(await hashTree(repo.dir), factoryBefore);
    await assert.rejects(fs.access(dst));

    // A ferry-format stick at the destination: a fioctl export does not add to it.
    const ferryStick = path.join(await tempDir('ferry-stick'), 'stick');
    await fs.mkdir(path.join(ferryStick, 'tuf'), { recursive: true });
    await fs.writeFile(
      path.join(ferryStick, 'tuf', 'bundle-targets.json'),
      JSON.stringify({
        signed: { _type: 'bundle', 'x-ferry-bundle': { type: 'ci', tag: TAG, targets: [targets.v1] } },
      }),
    );
    const stickBefore = await hashTree(ferryStick);
    const mixed = await cli(
      'export',
      '--repo',
      repo.dir,
      targets.v2,
      ferryStick,
      '--tag',
      TAG,
      '--allow-multiple-targets',
    );
    assert.equal(mixed.code, 29, mixed.stderr);
    assert.match(mixed.stderr, /ferry-format bundle/);
    assert.equal(await hashTree(ferryStick), stickBefore);
    assert.equal(await hashTree(repo.dir), factoryBefore);

    // Offline targets keys are a field of ferry's root that aktualizr does not know.
    const out = path.join(await tempDir('fioctl-offline'), 'keys');
    const offline = await cli('keys', 'add-offline', '--repo', repo.dir, '--out', out);
    assert.equal(offline.code, 29, offline.stderr);
    assert.match(offline.stderr, /^ferry: .*no offline targets keys/m);
    await assert.rejects(fs.access(out));
    assert.equal(await hashTree(repo.dir), factoryBefore);
  });
});
