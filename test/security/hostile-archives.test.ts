import assert from 'node:assert/strict';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { before, describe, test } from 'node:test';
import tar from 'tar-stream';
import yazl from 'yazl';
import { membersOfDirectory } from '../../src/util/tar-pack.js';
import { exportBundle } from '../../src/bundle/workstation/export.js';
import { cli } from '../support/cli.js';
import { buildFactory, exportTo, TAG, tempDir, type TestFactory } from '../support/factory.js';
import { assertRefused, assertRefusedUntouched, makeDevice } from '../support/sim-device.js';

/**
 * Single-file bundles: what a tar or a zip can lie about. Every case starts from a valid bundle tree and adds or
 * changes one member; each is refused with its code, a one-line reason naming the member, and an unchanged device.
 */

let factory: TestFactory;
let tree: string;
before(async () => {
  factory = await buildFactory();
  tree = await exportTo(factory, factory.v2);
});

type Extra = (pack: tar.Pack) => void;

/** A tar of the valid bundle tree, with `change` applied to each member and `extra` members appended. */
async function tarBundle(
  options: { extra?: Extra; change?: (name: string, content: Buffer) => Buffer; skip?: (name: string) => boolean } = {},
): Promise<string> {
  const file = path.join(await tempDir('tar'), 'bundle.tar');
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(file));
  for (const member of await membersOfDirectory(tree)) {
    if (options.skip?.(member.name)) continue;
    if (member.type === 'directory') pack.entry({ name: `${member.name}/`, type: 'directory' });
    else if (member.type === 'file-from') {
      const content = await fs.readFile(member.source);
      pack.entry({ name: member.name, type: 'file' }, options.change ? options.change(member.name, content) : content);
    }
  }
  options.extra?.(pack);
  pack.finalize();
  await written;
  return file;
}

async function zipBundle(extra?: (zip: yazl.ZipFile) => void): Promise<string> {
  const file = path.join(await tempDir('zip'), 'bundle.zip');
  const zip = new yazl.ZipFile();
  for (const member of await membersOfDirectory(tree)) {
    if (member.type === 'file-from') zip.addFile(member.source, member.name);
  }
  extra?.(zip);
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
  return file;
}

const device = () => makeDevice(factory, factory.v1);

describe('single-file bundles: the good ones', () => {
  for (const archive of ['tar', 'zip'] as const) {
    test(`ferry export --archive ${archive} writes one file that installs (100), and unpacks nothing into the device for good`, async () => {
      const destination = path.join(await tempDir('archive'), `bundle.${archive}`);
      await exportBundle(factory.repo, {
        targetName: factory.v3BootFails,
        destination,
        tag: TAG,
        type: 'ci',
        expiresInDays: 30,
        archive,
      });
      assert.ok((await fs.stat(destination)).isFile());
      assert.deepEqual(
        await fs.readdir(path.dirname(destination)),
        [`bundle.${archive}`],
        'no tree or partial file left beside it',
      );
      const target = await device();
      const result = await cli('install', '--config', target.configDir, '--src-dir', destination);
      assert.equal(result.code, 100, result.stderr);
      const ferryDir = path.dirname(target.device.paths.statusFile);
      assert.deepEqual(
        (await fs.readdir(ferryDir)).filter((name) => name.startsWith('.bundle-')),
        [],
        'the unpacked copy is gone',
      );
    });
  }

  test('an export --archive onto an existing file is refused (45)', async () => {
    const destination = path.join(await tempDir('archive'), 'bundle.tar');
    await fs.writeFile(destination, 'keep me');
    const result = await cli(
      'export',
      '--repo',
      factory.repo.dir,
      factory.v2,
      destination,
      '--tag',
      'main',
      '--archive',
      'tar',
    );
    assert.equal(result.code, 45);
    assert.equal(await fs.readFile(destination, 'utf8'), 'keep me');
  });
});

describe('single-file bundles: hostile tars', () => {
  const cases: Array<[string, Extra, RegExp]> = [
    [
      'a member that climbs out with ../',
      (pack) => pack.entry({ name: 'tuf/../../escape.json' }, '{}'),
      /member "tuf\/..\/..\/escape.json": ".." leaves the bundle/,
    ],
    [
      'a member with an absolute path',
      (pack) => pack.entry({ name: '/etc/passwd' }, 'root::0:0'),
      /member "\/etc\/passwd": an absolute path/,
    ],
    [
      'a symlink that points out of the bundle',
      (pack) => pack.entry({ name: 'apps/evil', type: 'symlink', linkname: '../../../../etc' }),
      /member "apps\/evil": a symlink to "..\/..\/..\/..\/etc", which points out of the bundle/,
    ],
    [
      'a symlink to an absolute path',
      (pack) => pack.entry({ name: 'tuf/root.json', type: 'symlink', linkname: '/var/sota/ferry/tuf/root.json' }),
      /a symlink to "\/var\/sota\/ferry\/tuf\/root.json", which points out of the bundle/,
    ],
    [
      'a hard link',
      (pack) => pack.entry({ name: 'apps/hard', type: 'link', linkname: 'tuf/1.root.json' }),
      /member "apps\/hard": a hardlink to "tuf\/1.root.json"/,
    ],
    [
      'a duplicate member',
      (pack) => pack.entry({ name: 'tuf/timestamp.json' }, '{}'),
      /member "tuf\/timestamp.json": appears twice/,
    ],
    [
      'a character device',
      (pack) => pack.entry({ name: 'apps/null', type: 'character-device', devmajor: 1, devminor: 3 }),
      /member "apps\/null": a device, fifo or other special file/,
    ],
    [
      'a fifo',
      (pack) => pack.entry({ name: 'ostree_repo/fifo', type: 'fifo' }),
      /a device, fifo or other special file/,
    ],
    ['a backslash in a name', (pack) => pack.entry({ name: 'tuf\\..\\x.json' }, '{}'), /a backslash in its name/],
  ];
  for (const [name, extra, reason] of cases) {
    test(`${name}: 17`, async () => {
      await assertRefused(await device(), await tarBundle({ extra }), 17, reason);
    });
  }

  test('a truncated tar: 17', async () => {
    const file = await tarBundle();
    const bytes = await fs.readFile(file);
    await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2) + 100));
    await assertRefused(await device(), file, 17, /the tar is damaged or truncated/);
  });

  test('a tar cut in the middle of a member that is skipped: 17, and no stray error (found by the fuzz test)', async () => {
    const file = await tarBundle({
      extra: (pack) => pack.entry({ name: 'notes/README.txt' }, Buffer.alloc(64 * 1024, 0x41)),
    });
    const bytes = await fs.readFile(file);
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 40 * 1024));
    await assertRefused(await device(), file, 17, /the tar is damaged or truncated/);
  });

  test('an oversized metadata member (capped on the way, never parsed): 16', async () => {
    const file = await tarBundle({
      change: (name, content) => (name === 'tuf/snapshot.json' ? Buffer.alloc(5 * 1024 * 1024, 0x20) : content),
    });
    await assertRefused(
      await device(),
      file,
      16,
      /tuf\/snapshot.json: more than the 4194304 bytes allowed for metadata/,
    );
  });

  test('an OSTree metadata object that does not hash to its name (checked on the way): 70', async () => {
    const file = await tarBundle({
      change: (name, content) => {
        if (!name.endsWith('.dirtree')) return content;
        const changed = Buffer.from(content);
        changed[0] = changed[0]! ^ 1;
        return changed;
      },
    });
    await assertRefused(
      await device(),
      file,
      70,
      /ostree_repo\/objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.dirtree: content hashes to sha256:/,
    );
  });

  test('an OSTree file object whose content does not match its name (checked on the way): 70', async () => {
    let flipped = false;
    const file = await tarBundle({
      change: (name, content) => {
        if (flipped || !name.endsWith('.filez') || content.length < 200) return content;
        flipped = true;
        const changed = Buffer.from(content);
        changed[changed.length - 20] = changed[changed.length - 20]! ^ 1;
        return changed;
      },
    });
    await assertRefused(
      await device(),
      file,
      70,
      /ostree_repo\/objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.filez: (the object's checksum is|not an OSTree file object)/,
    );
  });

  test('members outside tuf/, ostree_repo/ and apps/ are never unpacked, and the bundle still installs', async () => {
    const file = await tarBundle({ extra: (pack) => pack.entry({ name: 'README.txt' }, 'hello') });
    const target = await device();
    const result = await cli('install', '--config', target.configDir, '--src-dir', file);
    assert.equal(result.code, 100, result.stderr);
  });
});

describe('single-file bundles: hostile zips', () => {
  test('a zip bomb (a member that inflates more than 200 times): 17', async () => {
    const file = await zipBundle((zip) =>
      zip.addBuffer(Buffer.alloc(64 * 1024 * 1024), 'apps/bomb', { compress: true }),
    );
    await assertRefused(
      await device(),
      file,
      17,
      /member "apps\/bomb": inflates \d+ bytes to 67108864, more than 200 times \(a zip bomb\)/,
    );
  });

  test('a truncated zip: 17', async () => {
    const file = await zipBundle();
    const bytes = await fs.readFile(file);
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 200));
    await assertRefused(await device(), file, 17, /the zip is damaged or truncated/);
  });

  test('a zip member with ../ in its name: 17', async () => {
    const file = await zipBundle();
    // yazl refuses to write such a name, so it is patched into both headers afterwards, as an attacker would.
    const bytes = await fs.readFile(file);
    const from = Buffer.from('tuf/timestamp.json');
    const to = Buffer.from('../../timestamp.js');
    let at = bytes.indexOf(from);
    while (at >= 0) {
      to.copy(bytes, at);
      at = bytes.indexOf(from, at + 1);
    }
    await fs.writeFile(file, bytes);
    await assertRefused(await device(), file, 17, /(".." leaves the bundle|damaged|invalid relative path)/);
  });

  test('a file that is neither a directory, a tar nor a zip: 13', async () => {
    const file = path.join(await tempDir('junk'), 'bundle.bin');
    await fs.writeFile(file, 'not a bundle at all');
    await assertRefusedUntouched(await device(), file, 13, /neither a bundle directory nor a tar or zip bundle/);
  });
});
