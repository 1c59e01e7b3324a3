import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readBackBundleArchive } from '../../src/bundle/format/bundle-archive.js';
import { packBundleDirectory } from '../../src/bundle/workstation/pack-bundle.js';
import { FerryError } from '../../src/errors.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { assertRefused, makeDevice } from '../support/sim-device.js';
import { hashTree } from '../support/tree-hash.js';

/**
 * `ferry bundle pack <dir> <file>`: a finished bundle directory (here a stick for two targets, with the reports
 * devices left on it) as one file, checked as install reads it, read back after writing, written atomically.
 */
let factory: TestFactory;
/** A stick for v2 and the other board's target, with a device's report beside the bundle. */
let stick: string;

before(async () => {
  factory = await buildFactory();
  stick = await exportTo(factory, factory.v2);
  await exportTo(factory, factory.otherBoard, { destination: stick, mode: 'add-target' });
  await fs.mkdir(path.join(stick, 'reports', 'unit-1'), { recursive: true });
  await fs.writeFile(path.join(stick, 'reports', 'unit-1', 'report.json'), '{}');
});

/** A copy of the stick to change. */
async function copyOfStick(): Promise<string> {
  const copy = path.join(await tempDir('stick-copy'), 'stick');
  await fs.cp(stick, copy, { recursive: true });
  return copy;
}

describe('bundle pack', () => {
  for (const kind of ['tar', 'zip'] as const) {
    test(`a stick for two targets as a ${kind}: 0; it verifies, installs (100) and holds only the bundle`, async () => {
      const out = await tempDir(`pack-${kind}`);
      const file = path.join(out, `stick.${kind}`);
      const before = await hashTree(stick);
      const result = await cli('bundle', 'pack', stick, file, '--json');
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout);
      assert.equal(report.archive, file);
      assert.equal(report.kind, kind);
      assert.deepEqual(await fs.readdir(out), [`stick.${kind}`], 'no .partial left');
      assert.equal(await hashTree(stick), before, 'the bundle directory is untouched');

      const content = await readBackBundleArchive(file, kind);
      assert.ok(content.has('tuf/bundle-targets.json'));
      assert.ok(
        [...content.keys()].every((name) => /^(tuf|ostree_repo|apps)\//.test(name)),
        'only the bundle: reports/ stays out',
      );
      const verified = await cli('verify', file, '--json');
      assert.equal(verified.code, 0, verified.stderr);
      assert.deepEqual(
        JSON.parse(verified.stdout)
          .targets.map((target: { name: string }) => target.name)
          .sort(),
        [factory.v2, factory.otherBoard].sort(),
      );
      const device = await makeDevice(factory, factory.v1);
      const install = await cli('install', '--config', device.configDir, '--src-dir', file);
      assert.equal(install.code, 100, install.stderr);
    });
  }

  test('refusals, each with its code and one line, and nothing written', async () => {
    const out = await tempDir('pack-refused');
    const existing = path.join(out, 'exists.tar');
    await fs.writeFile(existing, 'not mine');
    const notABundle = await tempDir('not-a-bundle');
    const cases: [string[], number, RegExp][] = [
      [[stick, existing], 45, /exists\.tar already exists; pack into a new file$/],
      [[stick, path.join(out, 'stick.tgz')], 2, /name the archive <name>\.tar or <name>\.zip/],
      [[notABundle, path.join(out, 'x.tar')], 13, /is not a bundle: it has no tuf\/ directory$/],
      [[path.join(out, 'missing'), path.join(out, 'x.tar')], 13, /cannot open the bundle/],
      [[stick, path.join(stick, 'apps', 'x.tar')], 2, /is inside the bundle it would pack/],
      [[stick, path.join(out, 'no-such-dir', 'x.tar')], 2, /no-such-dir is not a directory to write x\.tar into$/],
      [[stick, path.join(existing, 'x.tar')], 63, /x\.tar lies under .*exists\.tar, which is a file$/],
    ];
    for (const [args, code, reason] of cases) {
      const result = await cli('bundle', 'pack', ...args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1);
      assert.match(result.stderr.trim(), reason);
    }
    assert.deepEqual(await fs.readdir(out), ['exists.tar']);
    assert.equal(await fs.readFile(existing, 'utf8'), 'not mine');
  });

  test('a symlink in the bundle (install would refuse it): 17 naming it, and no file', async () => {
    const copy = await copyOfStick();
    await fs.symlink('/etc/passwd', path.join(copy, 'apps', 'passwd'));
    const out = await tempDir('pack-link');
    const result = await cli('bundle', 'pack', copy, path.join(out, 'b.tar'));
    assert.equal(result.code, 17, result.stderr);
    assert.match(result.stderr, /^ferry: apps\/passwd in .* is a symlink: a bundle holds only files and directories/);
    assert.deepEqual(await fs.readdir(out), []);
  });

  test('a bundle the read-back refuses (an object that does not hash to its name): 48 naming it, and no file', async () => {
    const copy = await copyOfStick();
    const objects = path.join(copy, 'ostree_repo', 'objects');
    let damaged = '';
    for (const prefix of (await fs.readdir(objects)).sort()) {
      const name = (await fs.readdir(path.join(objects, prefix))).find((file) => file.endsWith('.dirtree'));
      if (name !== undefined) {
        damaged = `ostree_repo/objects/${prefix}/${name}`;
        await fs.appendFile(path.join(copy, damaged), 'x');
        break;
      }
    }
    assert.notEqual(damaged, '');
    const out = await tempDir('pack-damaged');
    const result = await cli('bundle', 'pack', copy, path.join(out, 'b.zip'));
    assert.equal(result.code, 48, result.stderr);
    assert.ok(result.stderr.includes(`the written zip failed its read-back: ${damaged}: content hashes to`));
    assert.deepEqual(await fs.readdir(out), []);
  });

  test('onto a FAT32 stick, an archive over its file size limit: 61, and no file', async () => {
    const out = await tempDir('pack-fat32');
    const error = await packBundleDirectory(stick, path.join(out, 'b.tar'), {
      // statfs on a FAT32 stick, with a limit the test's bundle crosses (the real one is 4 GiB - 1 B).
      filesystemProbe: async () => ({ name: 'FAT32 (vfat)', hardLinks: false, maxFileBytes: 1_050_000 }),
    }).then(
      () => assert.fail('pack went ahead'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof FerryError && error.outcome === 'MEDIA_FILE_TOO_LARGE', String(error));
    assert.match(error.message, /more than the 1050000 B a file can have on FAT32 \(vfat\)/);
    assert.deepEqual(await fs.readdir(out), []);
  });

  describe('onto media that fill up', () => {
    let small = '';
    let mounted = false;
    before(async () => {
      small = await tempDir('pack-small');
      const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', small], { encoding: 'utf8' });
      mounted = mount.status === 0;
      // Only a machine that cannot mount may skip; CI can, so there it is a failure.
      if (!mounted) assert.notEqual(process.env['CI'], 'true', `cannot mount a tmpfs in CI: ${mount.stderr}`);
    });
    after(() => {
      if (mounted) spawnSync('umount', ['-l', small]);
    });

    for (const kind of ['tar', 'zip'] as const) {
      test(`${kind}: 59 with a one-line reason, and no .partial left`, async (t) => {
        if (!mounted) {
          t.skip('this machine cannot mount a tmpfs');
          return;
        }
        const result = await cli('bundle', 'pack', stick, path.join(small, `b.${kind}`));
        assert.equal(result.code, 59, result.stderr);
        assert.match(
          result.stderr.trim(),
          /^ferry: no space left while the archive was written .*; nothing was left behind$/,
        );
        assert.equal(result.stderr.trim().split('\n').length, 1);
        assert.deepEqual(await fs.readdir(small), []);
      });
    }
  });
});

describe('a tar of a bundle under one folder (tar cf b.tar bundle/)', () => {
  const tarOf = async (args: string[]): Promise<string> => {
    const file = path.join(await tempDir('folder-tar'), 'b.tar');
    const made = spawnSync('tar', ['cf', file, ...args], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    return file;
  };

  test('is taken as the bundle: it verifies, and installs (100)', async () => {
    const file = await tarOf(['-C', path.dirname(stick), path.basename(stick)]);
    const verified = await cli('verify', file);
    assert.equal(verified.code, 0, verified.stderr);
    const device = await makeDevice(factory, factory.v1);
    const install = await cli('install', '--config', device.configDir, '--src-dir', file);
    assert.equal(install.code, 100, install.stderr);
  });

  test('with bundle members beside the folder too: 17 naming the member, never a temp path', async () => {
    const file = await tarOf(['-C', path.dirname(stick), path.basename(stick), '-C', stick, 'tuf']);
    const device = await makeDevice(factory, factory.v1);
    const folder = path.basename(stick);
    await assertRefused(
      device,
      file,
      17,
      new RegExp(`^ferry: member "tuf/": the bundle in this archive sits under "${folder}/", this member beside it$`),
    );
  });

  test('a tar that holds no bundle: 17 naming the tar and its first member, never a temp path', async () => {
    const dir = await tempDir('no-bundle');
    await fs.mkdir(path.join(dir, 'photos', 'tuf'), { recursive: true });
    await fs.mkdir(path.join(dir, 'photos', 'x'));
    await fs.writeFile(path.join(dir, 'photos', 'x', 'cat.jpg'), 'meow');
    const file = await tarOf(['-C', dir, 'photos/x']);
    const device = await makeDevice(factory, factory.v1);
    await assertRefused(
      device,
      file,
      17,
      /^ferry: b\.tar holds no bundle: no member is a file of tuf\/, at its top or under one folder \(its first member is "photos\/x\/"\)$/,
    );
    const shown = await cli('show', file);
    assert.equal(shown.code, 17);
    assert.doesNotMatch(shown.stderr, /\.bundle-/);
  });
});
