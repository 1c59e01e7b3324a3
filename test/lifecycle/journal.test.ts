import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { removeLeftovers } from '../../src/device/leftovers.js';
import { devicePaths } from '../../src/device/paths.js';
import { interruptedCommand, Journal, parseJournal } from '../../src/lifecycle/journal.js';
import { tempDir } from '../support/factory.js';

const line = (entry: Record<string, unknown>) => JSON.stringify({ at: 't', pid: 7, command: 'install', ...entry });

describe('the journal of device-changing steps', () => {
  test('a line torn by a power cut is ignored; the lines before it still tell the story', () => {
    const text = [
      line({ event: 'begin' }),
      line({ event: 'intent', step: 'install.rootfs-pull' }),
      '{"at":"t","pi',
    ].join('\n');
    const entries = parseJournal(text);
    assert.equal(entries.length, 2);
    assert.deepEqual(interruptedCommand(entries), {
      command: 'install',
      pid: 7,
      step: 'install.rootfs-pull',
      stepDone: false,
      at: 't',
    });
  });

  test('a step with its result is "done"; a command with its end line was not interrupted', () => {
    const started = [line({ event: 'begin' }), line({ event: 'intent', step: 'run.apps-start' })];
    const done = [...started, line({ event: 'done', step: 'run.apps-start' })];
    assert.equal(interruptedCommand(parseJournal(done.join('\n')))?.stepDone, true);
    assert.equal(interruptedCommand(parseJournal([...done, line({ event: 'end' })].join('\n'))), null);
    assert.equal(interruptedCommand([]), null);
  });

  test('step() records intent and result around the action; a failure is recorded and rethrown', async () => {
    const file = path.join(await tempDir('journal'), 'journal');
    const journal = await Journal.open(file, 'install');
    await assert.rejects(fs.access(file), 'nothing is written before the first step');
    assert.equal(await journal.step('install.apps-stage', async () => 42), 42);
    await assert.rejects(
      journal.step('install.rootfs-pull', async () => {
        throw new Error('pull broke');
      }),
      /pull broke/,
    );
    await journal.end('STAGING_FAILED');
    const events = parseJournal(await fs.readFile(file, 'utf8')).map((entry) => `${entry.event} ${entry.step ?? ''}`);
    assert.deepEqual(events, [
      'begin ',
      'intent install.apps-stage',
      'done install.apps-stage',
      'intent install.rootfs-pull',
      'failed install.rootfs-pull',
      'end ',
    ]);
    const next = await Journal.open(file, 'run');
    assert.equal(next.interrupted, null);
  });

  test('a journal that cannot be read (a directory where the file should be) is moved aside, not a refusal', async () => {
    const file = path.join(await tempDir('journal-broken'), 'journal');
    await fs.mkdir(path.join(file, 'junk'), { recursive: true });
    const journal = await Journal.open(file, 'install');
    assert.equal(journal.interrupted, null);
    await journal.step('install.apps-stage', async () => undefined);
    assert.equal(parseJournal(await fs.readFile(file, 'utf8')).length, 3);
    await fs.access(path.join(`${file}.broken`, 'junk'));
  });

  test('FERRY_CRASH_AT kills the process with SIGKILL after the intent; the journal shows the step unfinished', async () => {
    const file = path.join(await tempDir('journal-crash'), 'journal');
    const module = new URL('../../src/lifecycle/journal.js', import.meta.url).href;
    const script = `const { Journal } = await import(${JSON.stringify(module)});
      const journal = await Journal.open(${JSON.stringify(file)}, 'install');
      await journal.step('install.apps-stage', async () => undefined);
      await journal.step('install.rootfs-pull', async () => console.log('acted'));
      console.log('not reached');`;
    for (const [point, acted] of [
      ['install.rootfs-pull', false],
      ['install.rootfs-pull:done', true],
    ] as const) {
      await fs.rm(file, { force: true });
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, FERRY_CRASH_AT: point },
        encoding: 'utf8',
      });
      assert.equal(child.signal, 'SIGKILL', child.stderr);
      assert.equal(child.stdout.includes('acted'), acted);
      assert.ok(!child.stdout.includes('not reached'));
      const journal = await Journal.open(file, 'run');
      assert.equal(journal.interrupted?.step, 'install.rootfs-pull');
      assert.equal(journal.interrupted?.stepDone, false, 'the result line is never written');
      assert.match(journal.describeInterrupted()!, /previous install .* stopped during step install.rootfs-pull/);
    }
  });
});

describe('leftovers of a killed command', () => {
  test('staging directories, trash and temp files go; records and this process own scratch stay', async () => {
    const storage = await tempDir('leftovers');
    const paths = devicePaths({
      storagePath: storage,
      rebootSentinelDir: path.join(storage, 'run'),
      rebootSentinelName: 'x',
    } as never);
    const ferryDir = path.dirname(paths.statusFile);
    await fs.mkdir(paths.appStore, { recursive: true });
    await fs.mkdir(paths.trustedMetadataDir, { recursive: true });
    const stale = [
      path.join(ferryDir, '.apps-staging-99999-0badf00d'),
      path.join(ferryDir, '.bundle-99999-0badf00d'),
      path.join(paths.appStore, '.trash-00112233aabb'),
    ];
    for (const dir of stale) await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    const staleTemp = path.join(paths.trustedMetadataDir, '.root.json.99999.0badf00d.tmp');
    await fs.writeFile(staleTemp, '{');
    const mine = path.join(ferryDir, `.bundle-${process.pid}-0badf00d`);
    await fs.mkdir(mine);
    const records = [paths.statusFile, path.join(paths.trustedMetadataDir, 'root.json'), paths.journalFile];
    for (const file of records) await fs.writeFile(file, '{}');

    const removed = await removeLeftovers(paths);
    assert.deepEqual(removed.sort(), [...stale, staleTemp].sort());
    for (const file of [...records, mine]) await fs.access(file);
  });
});
