import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { OUTCOMES } from '../../src/exit-codes.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';
import { makeDevice, statusOf } from '../support/sim-device.js';

/**
 * integration/ferry-boot, the boot hook, under busybox ash and dash: a scripted `ferry` on the PATH answers the exit
 * codes, and the reboot, the engine commands and the mount are recorded, so each test reads what the hook did and
 * in which order. Then the hook against the real ferry on a simulated device.
 */

const INTEGRATION = fileURLToPath(new URL('../../../integration/', import.meta.url));
const HOOK = path.join(INTEGRATION, 'ferry-boot');
const FERRY_JS = fileURLToPath(new URL('../../src/cli/ferry.js', import.meta.url));

/** The shells a device may run the hook with: busybox ash (a plain init) and dash (Debian's /bin/sh). */
const SHELLS: ReadonlyArray<{ name: string; argv: readonly string[] }> = [
  { name: 'busybox ash', argv: ['busybox', 'sh'] },
  { name: 'dash', argv: ['dash'] },
].filter((shell) => {
  const found = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', 'exit 0']).status === 0;
  assert.ok(found || process.env['CI'] !== 'true', `${shell.name} is missing (scripts/setup.sh installs it)`);
  return found;
});

/** A recorded command: `<name> <args>` appended to the calls file (the name: the file's own, or FAKE_NAME). */
const recorder = (name = '$(basename "$0")'): string => `#!/bin/sh
name=${name}
printf '%s\\n' "$name\${*:+ $*}" >>"$FAKE_CALLS"
`;

/**
 * The scripted ferry: each call takes the next "<code> <OUTCOME> [<seconds left>]" line of the answers file (none
 * left: 0 OK) and prints what `--json` prints.
 */
const FAKE_FERRY = `#!/bin/sh
printf '%s\\n' "ferry $*" >>"$FAKE_CALLS"
if [ -n "\${FAKE_RECORD_PATH:-}" ]; then env | sed -n 's/^PATH=.*/ferry got a PATH/p' >>"$FAKE_CALLS"; fi
answer=$(head -n 1 "$FAKE_ANSWERS")
sed -i 1d "$FAKE_ANSWERS"
set -- \${answer:-0 OK}
printf '{\\n  "outcome": "%s",\\n  "exitCode": %s,\\n  "message": "scripted"' "$2" "$1"
if [ -n "\${3:-}" ]; then printf ',\\n  "progress": {\\n    "unit": "seconds-left",\\n    "value": %s\\n  }' "$3"; fi
printf '\\n}\\n'
exit "$1"
`;

/** Mounts by creating the stick's bundle (tuf/) in the directory; FAKE_MOUNT_RW_FAILS=1 refuses a read-write mount. */
const FAKE_MOUNT = `#!/bin/sh
printf '%s\\n' "mount $*" >>"$FAKE_CALLS"
if [ "$1" != -o ] && [ "\${FAKE_MOUNT_RW_FAILS:-}" = 1 ]; then exit 32; fi
for last; do :; done
mkdir -p "$last/tuf"
`;

/** Succeeds from the FAKE_ENGINE_UP_AFTER-th check on. */
const FAKE_ENGINE_CHECK = `#!/bin/sh
printf '%s\\n' "engine-check" >>"$FAKE_CALLS"
n=$(($(cat "$FAKE_CALLS.checks" 2>/dev/null || echo 0) + 1))
echo "$n" >"$FAKE_CALLS.checks"
[ "$n" -ge "\${FAKE_ENGINE_UP_AFTER:-1}" ]
`;

interface HookRun {
  readonly code: number;
  /** The hook's stdout, line by line. */
  readonly lines: string[];
  readonly stderr: string;
  /** Every recorded command, in order: `ferry run --json`, `reboot`, `engine-restart`, `mount …`, `umount …`. */
  readonly calls: string[];
  readonly dir: string;
}

interface HookOptions {
  /** ferry's answers, in order: [code, outcome] or [code, outcome, seconds left]. */
  readonly answers?: ReadonlyArray<readonly [number, string, number?]>;
  readonly env?: Record<string, string>;
  /** Reuse the directory of an earlier call (its state: the reboot count). */
  readonly dir?: string;
}

async function runHook(shell: (typeof SHELLS)[number], args: readonly string[], options: HookOptions = {}) {
  const dir = options.dir ?? (await tempDir('ferry-boot'));
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  const tools: Record<string, string> = {
    ferry: FAKE_FERRY,
    'fake-reboot': recorder('reboot'),
    'fake-engine-restart': recorder('engine-restart'),
    'fake-engine-check': FAKE_ENGINE_CHECK,
    'fake-mount': FAKE_MOUNT,
    'fake-umount': recorder('umount'),
  };
  for (const [name, body] of Object.entries(tools)) await fs.writeFile(path.join(bin, name), body, { mode: 0o755 });
  const calls = path.join(dir, 'calls');
  await fs.writeFile(calls, '');
  await fs.writeFile(
    path.join(dir, 'answers'),
    (options.answers ?? []).map((answer) => `${answer.join(' ')}\n`).join(''),
  );
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FERRY')));
  const env: Record<string, string> = {
    ...(inherited as Record<string, string>),
    PATH: `${bin}:${process.env['PATH']}`,
    FAKE_CALLS: calls,
    FAKE_ANSWERS: path.join(dir, 'answers'),
    FERRY_BOOT_DEFAULTS: path.join(dir, 'no-defaults'),
    FERRY_REBOOT: 'fake-reboot',
    FERRY_ENGINE_RESTART: 'fake-engine-restart',
    FERRY_ENGINE_CHECK: '',
    FERRY_ENGINE_POLL: '0',
    FERRY_TESTING_WAIT: '0',
    FERRY_LOCK_WAIT: '0',
    FERRY_BOOT_STATE: path.join(dir, 'state'),
    FERRY_STORAGE: path.join(dir, 'storage'),
    FERRY_MOUNT: 'fake-mount',
    FERRY_UMOUNT: 'fake-umount',
    FERRY_STICK_DIR: path.join(dir, 'media'),
    ...options.env,
  };
  if (env['PATH'] === '') delete env['PATH'];
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(shell.argv[0]!, [...shell.argv.slice(1), HOOK, ...args], { env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  const recorded = (await fs.readFile(calls, 'utf8')).split('\n').filter((line) => line !== '');
  const lines = result.stdout.split('\n').filter((line) => line !== '');
  return { code: result.code, lines, stderr: result.stderr, calls: recorded, dir } satisfies HookRun;
}

/** A stick already mounted: a directory that holds a bundle. */
async function mountedStick(): Promise<string> {
  const stick = await tempDir('stick');
  await fs.mkdir(path.join(stick, 'tuf'));
  return stick;
}

const explain = (run: HookRun): string =>
  [...run.lines, '-- calls:', ...run.calls, '-- stderr:', run.stderr].join('\n');

for (const shell of SHELLS) {
  describe(`integration/ferry-boot under ${shell.name}`, () => {
    test('boot: every line it prints starts with "ferry-boot: " and names the code, the outcome and the action', async () => {
      const run = await runHook(shell, ['boot'], { answers: [[0, 'UPDATE_SUCCEEDED']] });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.lines, ['ferry-boot: run exited 0 (UPDATE_SUCCEEDED): done']);
      assert.deepEqual(run.calls, ['ferry run --json']);
    });

    test('boot: 100 reboots once, and the reboot is counted across boots', async () => {
      const run = await runHook(shell, ['boot'], { answers: [[100, 'APPS_FAILED_REBOOT_TO_ROLLBACK']] });
      assert.equal(run.code, 100, explain(run));
      assert.deepEqual(run.calls, ['ferry run --json', 'reboot'], explain(run));
      assert.deepEqual(run.lines, ['ferry-boot: run exited 100 (APPS_FAILED_REBOOT_TO_ROLLBACK): reboot: fake-reboot']);
      assert.equal((await fs.readFile(path.join(run.dir, 'state', 'reboots-in-a-row'), 'utf8')).trim(), '1');
    });

    test('boot: an unreadable reboot count starts from 0: the reboot happens and the count is whole again', async () => {
      const dir = await tempDir('ferry-boot');
      await fs.mkdir(path.join(dir, 'state'));
      await fs.writeFile(path.join(dir, 'state', 'reboots-in-a-row'), '2x\n');
      const run = await runHook(shell, ['boot'], { dir, answers: [[100, 'REBOOT_NOT_DONE_YET']] });
      assert.deepEqual(run.calls, ['ferry run --json', 'reboot'], explain(run));
      assert.equal(await fs.readFile(path.join(dir, 'state', 'reboots-in-a-row'), 'utf8'), '1\n');
      assert.deepEqual(await fs.readdir(path.join(dir, 'state')), ['reboots-in-a-row'], 'no temporary file left');
    });

    test('boot: after FERRY_MAX_REBOOTS reboots in a row it stops rebooting; a settled run starts the count again', async () => {
      const first = await runHook(shell, ['boot'], {
        answers: [[100, 'REBOOT_NOT_DONE_YET']],
        env: { FERRY_MAX_REBOOTS: '2' },
      });
      const options = { dir: first.dir, env: { FERRY_MAX_REBOOTS: '2' } };
      const second = await runHook(shell, ['boot'], { ...options, answers: [[100, 'REBOOT_NOT_DONE_YET']] });
      assert.deepEqual(second.calls, ['ferry run --json', 'reboot'], explain(second));
      const third = await runHook(shell, ['boot'], { ...options, answers: [[100, 'REBOOT_NOT_DONE_YET']] });
      assert.deepEqual(third.calls, ['ferry run --json'], `no third reboot:\n${explain(third)}`);
      assert.deepEqual(third.lines, [
        'ferry-boot: run exited 100 (REBOOT_NOT_DONE_YET): stop: 2 reboots in a row already (FERRY_MAX_REBOOTS=2)',
      ]);
      assert.equal(third.code, 100);
      const settled = await runHook(shell, ['boot'], { ...options, answers: [[99, 'ROLLED_BACK']] });
      assert.equal(settled.code, 99, explain(settled));
      const after = await runHook(shell, ['boot'], { ...options, answers: [[100, 'REBOOT_NOT_DONE_YET']] });
      assert.deepEqual(after.calls, ['ferry run --json', 'reboot'], explain(after));
    });

    test('stick: 90 at every boot (boot firmware that never confirms) meets the reboot limit; runs that find nothing pending do not end the chain', async () => {
      const stick = await mountedStick();
      const first = await runHook(shell, ['stick', stick], {
        answers: [[90, 'BOOT_FIRMWARE_REBOOT_FIRST']],
        env: { FERRY_MAX_REBOOTS: '2' },
      });
      assert.deepEqual(first.calls, [`ferry install --src-dir ${stick} --json`, 'reboot'], explain(first));
      const options = { dir: first.dir, env: { FERRY_MAX_REBOOTS: '2' } };
      for (const attempt of [2, 3]) {
        const boot = await runHook(shell, ['boot'], { ...options, answers: [[0, 'NOTHING_PENDING']] });
        assert.equal(boot.code, 0, explain(boot));
        const again = await runHook(shell, ['stick', stick], {
          ...options,
          answers: [[90, 'BOOT_FIRMWARE_REBOOT_FIRST']],
        });
        const rebooted = again.calls.includes('reboot');
        assert.equal(rebooted, attempt === 2, `attempt ${attempt}:\n${explain(again)}`);
      }
    });

    test('boot: 101 and 5 restart the container engine, then run again', async () => {
      const run = await runHook(shell, ['boot'], {
        answers: [
          [5, 'ENGINE_UNAVAILABLE'],
          [0, 'UPDATE_SUCCEEDED'],
        ],
        env: { FERRY_ENGINE_CHECK: 'fake-engine-check' },
      });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.calls, ['engine-check', 'ferry run --json', 'engine-restart', 'ferry run --json']);
      assert.equal(
        run.lines[1],
        'ferry-boot: run exited 5 (ENGINE_UNAVAILABLE): restart the container engine, then run again: fake-engine-restart',
      );
      const apps = await runHook(shell, ['boot'], {
        answers: [[101, 'RESTART_ENGINE_REQUIRED']],
        env: { FERRY_ENGINE_CHECK: 'fake-engine-check' },
      });
      assert.deepEqual(apps.calls, ['engine-check', 'ferry run --json', 'engine-restart', 'ferry run --json']);
    });

    test('boot: 105 waits the testing window and runs again; the wait is what run reported left', async () => {
      const run = await runHook(shell, ['boot'], {
        answers: [
          [105, 'TESTING'],
          [0, 'UPDATE_SUCCEEDED'],
        ],
      });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.calls, ['ferry run --json', 'ferry run --json']);
      assert.deepEqual(run.lines, [
        'ferry-boot: run exited 105 (TESTING): run again after the testing window: waiting 0 s',
        'ferry-boot: run exited 0 (UPDATE_SUCCEEDED): done',
      ]);
      const reported = await runHook(shell, ['boot'], {
        answers: [
          [105, 'TESTING', 0],
          [0, 'UPDATE_SUCCEEDED'],
        ],
        env: { FERRY_TESTING_WAIT: '' },
      });
      assert.equal(
        reported.lines[0],
        'ferry-boot: run exited 105 (TESTING): run again after the testing window: waiting 1 s',
      );
    });

    test('boot: FERRY_RUN_ARGS go to ferry run', async () => {
      const run = await runHook(shell, ['boot'], { env: { FERRY_RUN_ARGS: '--no-wait' } });
      assert.deepEqual(run.calls, ['ferry run --no-wait --json'], explain(run));
    });

    test('boot: ferry answering 105 forever is run FERRY_MAX_RUNS times, then the hook stops', async () => {
      const run = await runHook(shell, ['boot'], {
        answers: Array.from({ length: 10 }, () => [105, 'TESTING'] as const),
        env: { FERRY_MAX_RUNS: '3' },
      });
      assert.equal(run.code, 105, explain(run));
      assert.equal(run.calls.length, 3, explain(run));
      assert.equal(
        run.lines.at(-1),
        'ferry-boot: run exited 105 (TESTING): stop: ferry run ran 3 times (FERRY_MAX_RUNS=3)',
      );
    });

    test('boot: 31 (another ferry running) is bounded too', async () => {
      const run = await runHook(shell, ['boot'], {
        answers: Array.from({ length: 10 }, () => [31, 'LOCKED'] as const),
        env: { FERRY_MAX_RUNS: '2' },
      });
      assert.equal(run.code, 31, explain(run));
      assert.equal(run.calls.length, 2, explain(run));
    });

    test('boot: the engine is waited for until it answers; after FERRY_ENGINE_TIMEOUT run goes ahead anyway', async () => {
      const up = await runHook(shell, ['boot'], {
        env: { FERRY_ENGINE_CHECK: 'fake-engine-check', FAKE_ENGINE_UP_AFTER: '3' },
      });
      assert.deepEqual(up.calls, ['engine-check', 'engine-check', 'engine-check', 'ferry run --json'], explain(up));
      assert.ok(up.lines.includes('ferry-boot: boot: the container engine is up'), explain(up));
      const down = await runHook(shell, ['boot'], {
        env: { FERRY_ENGINE_CHECK: 'fake-engine-check', FAKE_ENGINE_UP_AFTER: '1000', FERRY_ENGINE_TIMEOUT: '4' },
      });
      assert.equal(down.calls.filter((call) => call === 'engine-check').length, 5, explain(down));
      assert.equal(down.calls.at(-1), 'ferry run --json');
      assert.match(down.lines.join('\n'), /ferry-boot: boot: the container engine is not up after 4 s/);
    });

    test('boot: no engine (FERRY_ENGINE_CHECK empty): nothing is waited for, and 5 restarts nothing', async () => {
      const run = await runHook(shell, ['boot'], {
        answers: [
          [5, 'ENGINE_UNAVAILABLE'],
          [0, 'NOTHING_PENDING'],
        ],
      });
      assert.deepEqual(run.calls, ['ferry run --json', 'ferry run --json'], explain(run));
      assert.match(
        run.lines[0]!,
        /: restart the container engine, then run again: no container engine on this device$/,
      );
    });

    test('boot: 110 and 120 log the INCONSISTENT reason file; 99 and 32 stop with their own line', async () => {
      const dir = await tempDir('ferry-boot');
      await fs.mkdir(path.join(dir, 'storage'));
      await fs.writeFile(path.join(dir, 'storage', 'inconsistent'), 'the previous apps did not start: app1\n');
      const run = await runHook(shell, ['boot'], { dir, answers: [[110, 'APPS_ROLLBACK_FAILED']] });
      assert.equal(run.code, 110);
      assert.deepEqual(run.lines, [
        'ferry-boot: run exited 110 (APPS_ROLLBACK_FAILED): stop: INCONSISTENT: the previous apps did not start: app1',
      ]);
      const undone = await runHook(shell, ['boot'], { answers: [[32, 'INSTALL_INTERRUPTED']] });
      assert.equal(undone.code, 32);
      assert.deepEqual(undone.calls, ['ferry run --json']);
    });

    test('boot: a ferry that prints no JSON is named UNKNOWN and stops the hook', async () => {
      const run = await runHook(shell, ['boot'], { env: { FERRY: 'false' } });
      assert.equal(run.code, 1);
      assert.deepEqual(run.lines, ['ferry-boot: run exited 1 (UNKNOWN): stop']);
    });

    test('boot: started with no PATH at all (a plain init), it gives ferry one (ferry runs ostree, fw_setenv…)', async () => {
      const dir = await tempDir('ferry-boot');
      const run = await runHook(shell, ['boot'], {
        dir,
        answers: [[0, 'NOTHING_PENDING']],
        env: { PATH: '', FERRY: path.join(dir, 'bin', 'ferry'), FAKE_RECORD_PATH: '1' },
      });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.lines, ['ferry-boot: run exited 0 (NOTHING_PENDING): done']);
      assert.deepEqual(run.calls, ['ferry run --json', 'ferry got a PATH']);
    });

    test('boot: settings come from the defaults file', async () => {
      const dir = await tempDir('ferry-boot');
      await fs.writeFile(path.join(dir, 'defaults'), 'FERRY_REBOOT="fake-reboot --from-defaults"\n');
      const run = await runHook(shell, ['boot'], {
        dir,
        answers: [[100, 'REBOOT_NOT_DONE_YET']],
        env: { FERRY_BOOT_DEFAULTS: path.join(dir, 'defaults') },
      });
      assert.deepEqual(run.calls, ['ferry run --json', 'reboot --from-defaults'], explain(run));
    });

    test('stick <device>: mounts it read-write, installs from it, unmounts it; 100: unmounted before the reboot', async () => {
      const dir = await tempDir('ferry-boot');
      const device = path.join(dir, 'sdz1');
      const made = spawnSync('mknod', [device, 'b', '7', '250']);
      assert.equal(made.status, 0, `mknod (the tests run as root): ${made.stderr}`);
      const media = path.join(dir, 'media', 'sdz1');
      const run = await runHook(shell, ['stick', device], { dir, answers: [[100, 'REBOOT_REQUIRED']] });
      assert.equal(run.code, 100, explain(run));
      assert.deepEqual(run.calls, [
        `mount ${device} ${media}`,
        `ferry install --src-dir ${media} --json`,
        `umount ${media}`,
        'reboot',
      ]);
      assert.ok(
        run.lines.includes('ferry-boot: install exited 100 (REBOOT_REQUIRED): reboot: fake-reboot'),
        explain(run),
      );
    });

    test('stick <device>: a stick that mounts only read-only is still installed from, and the hook says reports are lost', async () => {
      const dir = await tempDir('ferry-boot');
      const device = path.join(dir, 'sdz1');
      assert.equal(spawnSync('mknod', [device, 'b', '7', '250']).status, 0);
      const media = path.join(dir, 'media', 'sdz1');
      const run = await runHook(shell, ['stick', device], {
        dir,
        answers: [[0, 'ALREADY_INSTALLED']],
        env: { FAKE_MOUNT_RW_FAILS: '1' },
      });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.calls, [
        `mount ${device} ${media}`,
        `mount -o ro ${device} ${media}`,
        `ferry install --src-dir ${media} --json`,
        `umount ${media}`,
      ]);
      assert.match(run.lines.join('\n'), /mounted read-only on .*: ferry cannot write its reports to it/);
    });

    test('stick <dir>: 101 restarts the engine, then runs; a directory it did not mount stays mounted', async () => {
      const stick = await mountedStick();
      const run = await runHook(shell, ['stick', stick], {
        answers: [
          [101, 'RESTART_ENGINE_REQUIRED'],
          [0, 'UPDATE_SUCCEEDED'],
        ],
        env: { FERRY_ENGINE_CHECK: 'fake-engine-check' },
      });
      assert.equal(run.code, 0, explain(run));
      assert.deepEqual(run.calls, [`ferry install --src-dir ${stick} --json`, 'engine-restart', 'ferry run --json']);
    });

    test('stick: 30 runs the pending update first, then installs again', async () => {
      const stick = await mountedStick();
      const run = await runHook(shell, ['stick', stick], {
        answers: [
          [30, 'INSTALL_PENDING'],
          [0, 'UPDATE_SUCCEEDED'],
          [100, 'REBOOT_REQUIRED'],
        ],
      });
      assert.equal(run.code, 100, explain(run));
      assert.deepEqual(run.calls, [
        `ferry install --src-dir ${stick} --json`,
        'ferry run --json',
        `ferry install --src-dir ${stick} --json`,
        'reboot',
      ]);
    });

    test('stick: 30 whose run asks for a reboot reboots and installs nothing more', async () => {
      const stick = await mountedStick();
      const run = await runHook(shell, ['stick', stick], {
        answers: [
          [30, 'INSTALL_PENDING'],
          [100, 'REBOOT_NOT_DONE_YET'],
        ],
      });
      assert.equal(run.code, 100, explain(run));
      assert.deepEqual(run.calls, [`ferry install --src-dir ${stick} --json`, 'ferry run --json', 'reboot']);
    });

    test('stick: a refusal is logged with its outcome; nothing else is done', async () => {
      const stick = await mountedStick();
      const run = await runHook(shell, ['stick', stick], { answers: [[11, 'SECURITY_ERROR']] });
      assert.equal(run.code, 11);
      assert.deepEqual(run.calls, [`ferry install --src-dir ${stick} --json`]);
      assert.equal(run.lines.at(-1), 'ferry-boot: install exited 11 (SECURITY_ERROR): stop');
    });

    test('stick: the bundle is found in a directory or as a .tar on the stick; none: exit 1, ferry not called', async () => {
      const stick = await tempDir('stick');
      await fs.mkdir(path.join(stick, 'bundle-v2', 'tuf'), { recursive: true });
      const inDir = await runHook(shell, ['stick', stick]);
      assert.deepEqual(inDir.calls, [`ferry install --src-dir ${path.join(stick, 'bundle-v2')} --json`]);
      const packed = await tempDir('stick');
      await fs.writeFile(path.join(packed, 'v2.tar'), '');
      const inTar = await runHook(shell, ['stick', packed]);
      assert.deepEqual(inTar.calls, [`ferry install --src-dir ${path.join(packed, 'v2.tar')} --json`]);
      const empty = await tempDir('stick');
      const none = await runHook(shell, ['stick', empty]);
      assert.equal(none.code, 1);
      assert.deepEqual(none.calls, []);
      assert.match(none.lines.join('\n'), /^ferry-boot: stick .*: no bundle on it/m);
    });

    test('a bad command line: exit 2 and a usage line', async () => {
      for (const args of [[], ['stick'], ['boot', 'extra'], ['reboot']]) {
        const run = await runHook(shell, args);
        assert.equal(run.code, 2, explain(run));
        assert.deepEqual(run.calls, []);
        assert.match(run.lines[0]!, /^ferry-boot: usage: /);
      }
    });
  });
}

// ── the README's action table and the hook agree ─────────────────────────────────────────────────────────────────

interface ActionRow {
  /** The codes of the row; null: "any other code". */
  readonly codes: number[] | null;
  readonly run: string;
  readonly install: string;
}

async function readmeActions(): Promise<ActionRow[]> {
  const readme = await fs.readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- ferry-boot-actions:start -->');
  const end = readme.indexOf('<!-- ferry-boot-actions:end -->');
  assert.ok(start > 0 && end > start, 'the README marks its ferry-boot action table');
  return readme
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| code'))
    .map((line) => {
      const cells = line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim());
      assert.equal(cells.length, 3, line);
      const codes = /^`\d/.test(cells[0]!)
        ? cells[0]!.split(',').map((code) => Number(code.trim().replace(/`/g, '')))
        : null;
      return { codes, run: cells[1]!, install: cells[2]! };
    });
}

const codesOf = (command: string): Set<number> =>
  new Set(
    Object.values(OUTCOMES)
      .filter((info) => (info.commands as readonly string[]).some((entry) => entry === command || entry === '*'))
      .map((info) => info.exitCode),
  );

const outcomeFor = (command: string, code: number): string =>
  Object.entries(OUTCOMES).find(
    ([, info]) => info.exitCode === code && (info.commands as readonly string[]).includes(command),
  )?.[0] ??
  Object.entries(OUTCOMES).find(([, info]) => info.exitCode === code)?.[0] ??
  'UNKNOWN';

/** The phrase of a cell: "—" for a code the command never answers, else the text without its backquotes. */
const NEVER = '—';

describe('README "Boot integration": the action table', () => {
  test('covers every code run and install answer, and says "—" only for codes the command never answers', async () => {
    const rows = await readmeActions();
    assert.equal(rows.filter((row) => row.codes === null).length, 1, 'one row for any other code');
    for (const [column, command] of [
      ['run', 'run'],
      ['install', 'install'],
    ] as const) {
      for (const row of rows) {
        if (row.codes === null || row[column] !== NEVER) continue;
        for (const code of row.codes) {
          assert.ok(!codesOf(command).has(code), `${command} can answer ${code}: the README says "—"`);
        }
      }
    }
  });

  const shell = SHELLS[0]!;
  for (const [column, command] of [
    ['run', 'run'],
    ['install', 'install'],
  ] as const) {
    test(`every code's action after ${command} is the one ferry-boot prints (${shell.name})`, async () => {
      const rows = await readmeActions();
      const listed = new Set(rows.flatMap((row) => row.codes ?? []));
      const other = rows.find((row) => row.codes === null)!;
      const cases: Array<[number, string]> = [
        ...rows.flatMap((row) =>
          (row.codes ?? []).filter(() => row[column] !== NEVER).map((code): [number, string] => [code, row[column]]),
        ),
        ...[...codesOf(command)]
          .filter((code) => !listed.has(code))
          .map((code): [number, string] => [code, other[column]]),
      ];
      for (const [code, action] of cases) {
        const outcome = outcomeFor(command, code);
        const answers: Array<[number, string]> = [[code, outcome]];
        const args = command === 'run' ? ['boot'] : ['stick', await mountedStick()];
        const run = await runHook(shell, args, { answers });
        const prefix = `ferry-boot: ${command} exited ${code} (${outcome}): ${action.replace(/`/g, '')}`;
        assert.ok(
          run.lines.some((line) => line === prefix || line.startsWith(`${prefix}: `)),
          `README: ${code} after ${command} → "${action}"; ferry-boot printed:\n${explain(run)}`,
        );
      }
    });
  }
});

// ── against the real ferry on a simulated device ─────────────────────────────────────────────────────────────────

describe('integration/ferry-boot with the real ferry on a simulated device', () => {
  let factory: TestFactory;
  before(async () => {
    factory = await buildFactory();
  });

  /** `ferry` on the PATH is the built CLI with the device's configuration; the reboot is the simulator's. */
  async function deviceHook(deviceDir: string, configDir: string, args: readonly string[]) {
    const dir = await tempDir('ferry-boot');
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(
      path.join(bin, 'ferry'),
      `#!/bin/sh\nexec ${process.execPath} ${FERRY_JS} "$@" --config ${configDir}\n`,
      { mode: 0o755 },
    );
    const shell = SHELLS[0]!;
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FERRY')));
    const result = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), HOOK, ...args], {
      encoding: 'utf8',
      env: {
        ...(inherited as Record<string, string>),
        PATH: `${bin}:${process.env['PATH']}`,
        FERRY_BOOT_DEFAULTS: path.join(dir, 'no-defaults'),
        FERRY_REBOOT: `${process.execPath} ${FERRY_JS} sim reboot ${deviceDir} >/dev/null`,
        FERRY_ENGINE_CHECK: '',
        FERRY_BOOT_STATE: path.join(dir, 'state'),
        FERRY_STORAGE: path.join(deviceDir, 'var', 'sota'),
      },
    });
    return { code: result.status ?? -1, lines: result.stdout.split('\n').filter(Boolean), stderr: result.stderr };
  }

  test('a stick with v2: install 100, the reboot; at the boot run 0 (UPDATE_SUCCEEDED) on v2', async () => {
    const device = await makeDevice(factory, factory.v1);
    const stick = await exportTo(factory, factory.v2);
    const inserted = await deviceHook(device.dir, device.configDir, ['stick', stick]);
    assert.equal(inserted.code, 100, inserted.lines.join('\n') + inserted.stderr);
    assert.match(inserted.lines.join('\n'), /^ferry-boot: install exited 100 \(REBOOT_REQUIRED\): reboot: /m);
    const boot = await deviceHook(device.dir, device.configDir, ['boot']);
    assert.equal(boot.code, 0, boot.lines.join('\n') + boot.stderr);
    assert.deepEqual(boot.lines, ['ferry-boot: run exited 0 (UPDATE_SUCCEEDED): done']);
    assert.equal((await statusOf(device))['current'].name, factory.v2);
  });

  test('a rootfs that never boots: the simulated bootloader falls back; at the boot run 99 (ROLLED_BACK)', async () => {
    const device = await makeDevice(factory, factory.v1);
    const inserted = await deviceHook(device.dir, device.configDir, [
      'stick',
      await exportTo(factory, factory.v3BootFails),
    ]);
    assert.equal(inserted.code, 100, inserted.lines.join('\n') + inserted.stderr);
    const boot = await deviceHook(device.dir, device.configDir, ['boot']);
    assert.equal(boot.code, 99, boot.lines.join('\n') + boot.stderr);
    assert.deepEqual(boot.lines, [
      'ferry-boot: run exited 99 (ROLLED_BACK): stop: rolled back to the previous version',
    ]);
    assert.equal((await statusOf(device))['current'].name, factory.v1);
  });
});

// ── the systemd units and the udev rule ──────────────────────────────────────────────────────────────────────────

describe('integration/systemd and integration/udev', () => {
  test('systemd-analyze verify accepts both units (ExecStart pointed at this checkout)', async () => {
    const present = spawnSync('systemd-analyze', ['--version']).status === 0;
    if (!present) {
      assert.notEqual(process.env['CI'], 'true', 'systemd-analyze is missing (scripts/setup.sh installs systemd)');
      return;
    }
    const dir = await tempDir('units');
    for (const unit of ['ferry-run.service', 'ferry-stick@.service']) {
      const text = await fs.readFile(path.join(INTEGRATION, 'systemd', unit), 'utf8');
      assert.match(text, /^ExecStart=\/usr\/lib\/ferry\/integration\/ferry-boot /m);
      await fs.writeFile(path.join(dir, unit), text.replaceAll('/usr/lib/ferry/integration/ferry-boot', HOOK));
    }
    const verify = spawnSync(
      'systemd-analyze',
      ['verify', '--man=no', path.join(dir, 'ferry-run.service'), path.join(dir, 'ferry-stick@sdb1.service')],
      { encoding: 'utf8' },
    );
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(verify.stderr, '', 'no warnings');
  });

  test('ferry-run.service runs "ferry-boot boot" once, after the container engine; the stick unit after it', async () => {
    const run = await fs.readFile(path.join(INTEGRATION, 'systemd', 'ferry-run.service'), 'utf8');
    assert.match(run, /^Type=oneshot$/m);
    assert.match(run, /^Wants=docker\.service$/m);
    assert.match(run, /^After=.*\bdocker\.service\b/m);
    assert.match(run, /^ExecStart=\/usr\/lib\/ferry\/integration\/ferry-boot boot$/m);
    assert.match(run, /^WantedBy=multi-user\.target$/m);
    const stick = await fs.readFile(path.join(INTEGRATION, 'systemd', 'ferry-stick@.service'), 'utf8');
    assert.match(stick, /^ExecStart=\/usr\/lib\/ferry\/integration\/ferry-boot stick \/dev\/%I$/m);
    assert.match(stick, /^After=.*\bferry-run\.service\b/m);
    assert.match(stick, /^BindsTo=dev-%i\.device$/m);
  });

  test('the udev rule starts ferry-stick@<kernel name>.service for a USB block device with a filesystem', async () => {
    const rules = (await fs.readFile(path.join(INTEGRATION, 'udev', '99-ferry-stick.rules'), 'utf8'))
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#'));
    assert.equal(rules.length, 1, rules.join('\n'));
    const keys = rules[0]!.split(/,\s*/);
    for (const key of [
      'ACTION=="add"',
      'SUBSYSTEM=="block"',
      'ENV{ID_BUS}=="usb"',
      'ENV{ID_FS_USAGE}=="filesystem"',
      'TAG+="systemd"',
      'ENV{SYSTEMD_WANTS}+="ferry-stick@%k.service"',
    ]) {
      assert.ok(keys.includes(key), `the rule lacks ${key}: ${rules[0]}`);
    }
  });

  test('the defaults file names every setting the hook reads, and sourcing it changes nothing', async () => {
    const hook = await fs.readFile(HOOK, 'utf8');
    const settings = [...new Set([...hook.matchAll(/^(FERRY_[A-Z_]+|FERRY)=\$\{/gm)].map((match) => match[1]!))];
    const defaults = await fs.readFile(path.join(INTEGRATION, 'ferry-boot.default'), 'utf8');
    for (const name of settings)
      assert.match(defaults, new RegExp(`^#${name}=`, 'm'), `${name} is not in the defaults file`);
    const sourced = spawnSync(
      'dash',
      ['-c', `. ${path.join(INTEGRATION, 'ferry-boot.default')}; env | grep '^FERRY' || true`],
      {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] },
      },
    );
    assert.equal(sourced.status, 0, sourced.stderr);
    assert.equal(sourced.stdout, '', 'the shipped file only documents the defaults');
  });
});
