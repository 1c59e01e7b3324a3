import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Root } from '@tufjs/models';
import { readComposeArchive } from '../../src/apps/format/compose-archive.js';
import { parseCompose } from '../../src/apps/format/compose.js';
import { BundleRoot, memberParts, extractBundleArchive } from '../../src/bundle/format/bundle-archive.js';
import { FerryError } from '../../src/errors.js';
import { verifyBundleTargets } from '../../src/tuf/bundle-targets.js';
import { verifyBundleMetadata } from '../../src/tuf/verify-metadata.js';
import { buildFactory, exportTo, tempDir, type TestFactory } from '../support/factory.js';

/**
 * Property tests over the code that reads what is on the stick. Each runs for a bounded time (FERRY_FUZZ_SECONDS,
 * default a few seconds each), so CI always runs them. The property is the same everywhere: hostile input ends in
 * a FerryError (a refusal with a code), never in another exception, a hang, or a write outside the staging dir.
 */
const SECONDS = Number(process.env['FERRY_FUZZ_SECONDS'] ?? 4);
const budget = { interruptAfterTimeLimit: SECONDS * 1000, numRuns: 1_000_000, markInterruptAsFailure: false };

async function refusesOrAccepts(run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (error) {
    if (!(error instanceof FerryError)) throw new Error(`not a refusal: ${String(error)}`, { cause: error });
  }
}

let factory: TestFactory;
let bundle: string;
let tarBytes: Buffer;
let zipBytes: Buffer;
before(async () => {
  factory = await buildFactory();
  bundle = await exportTo(factory, factory.v2);
  const file = path.join(await tempDir('fuzz'), 'bundle.tar');
  const { exportBundle } = await import('../../src/bundle/workstation/export.js');
  await exportBundle(factory.repo, {
    targetName: factory.v2,
    destination: file,
    tag: 'main',
    type: 'ci',
    expiresInDays: 30,
    archive: 'tar',
  });
  tarBytes = await fs.readFile(file);
  const zip = path.join(path.dirname(file), 'bundle.zip');
  await exportBundle(factory.repo, {
    targetName: factory.v2,
    destination: zip,
    tag: 'main',
    type: 'ci',
    expiresInDays: 30,
    archive: 'zip',
  });
  zipBytes = await fs.readFile(zip);
});

describe('fuzz: the bundle reader', () => {
  test('member names: accepted ones stay inside the bundle; the rest are refusals', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('a', '/', '.', '..', '\\', 'tuf', 'apps', '\0') })),
        (name) => {
          try {
            const relative = new BundleRoot().place(name, memberParts(name));
            if (relative !== null) {
              assert.ok(!path.posix.isAbsolute(relative) && !relative.split('/').includes('..'), relative);
              assert.ok(['tuf', 'ostree_repo', 'apps'].includes(relative.split('/')[0]!));
            }
          } catch (error) {
            assert.ok(error instanceof FerryError);
          }
        },
      ),
      budget,
    );
  });

  for (const kind of ['tar', 'zip'] as const) {
    test(`a ${kind} bundle with random bytes changed: refused with a code, or unpacked inside its staging dir only`, async () => {
      const original = kind === 'tar' ? tarBytes : zipBytes;
      const work = await tempDir(`fuzz-${kind}`);
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
          fc.nat(),
          async (edits, cut) => {
            const bytes = Buffer.from(original);
            for (const [at, value] of edits) bytes[at % bytes.length] = value;
            const file = path.join(work, `case-${run}.${kind}`);
            const staging = path.join(work, `staging-${run++}`);
            await fs.writeFile(file, cut % 4 === 0 ? bytes.subarray(0, cut % bytes.length) : bytes);
            await refusesOrAccepts(() => extractBundleArchive(file, kind, staging));
            assert.deepEqual(
              (await fs.readdir(work)).filter((name) => !name.startsWith('case-') && !name.startsWith('staging-')),
              [],
            );
            await fs.rm(staging, { recursive: true, force: true });
            await fs.rm(file);
          },
        ),
        { ...budget, numRuns: 10_000 },
      );
    });
  }

  test('compose archives of random bytes are refused with an error, never a hang', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
        await assert.rejects(readComposeArchive(Buffer.from(bytes)));
      }),
      budget,
    );
  });

  test('compose files: any YAML either parses into services with images or is refused', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        try {
          const project = parseCompose(text);
          assert.ok(
            project.services.length > 0 && project.services.every((service) => typeof service.image === 'string'),
          );
        } catch (error) {
          assert.ok(error instanceof Error);
        }
      }),
      budget,
    );
  });
});

describe('fuzz: the metadata loader', () => {
  test('bundle-targets.json: any JSON value is a refusal with a code, or a verified object', async () => {
    const root = Root.fromJSON(JSON.parse(await fs.readFile(path.join(bundle, 'tuf', '1.root.json'), 'utf8')).signed);
    const real = JSON.parse(await fs.readFile(path.join(bundle, 'tuf', 'bundle-targets.json'), 'utf8'));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record({ signed: fc.jsonValue(), signatures: fc.jsonValue() }),
          fc.constant(real).map((doc) => ({ ...doc, signed: { ...doc.signed, version: -1 } })),
        ),
        (json) => {
          try {
            verifyBundleTargets(json, root, new Date());
          } catch (error) {
            assert.ok(error instanceof FerryError, String(error));
          }
        },
      ),
      budget,
    );
  });

  test('metadata files replaced by random JSON or bytes: the metadata walk ends in a refusal with a code', async () => {
    const trusted = await tempDir('fuzz-trusted');
    await fs.copyFile(path.join(bundle, 'tuf', '1.root.json'), path.join(trusted, 'root.json'));
    const files = ['timestamp.json', 'snapshot.json', 'targets.json', 'bundle-targets.json', '2.root.json'];
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...files),
        fc.oneof(
          fc.jsonValue().map((value) => JSON.stringify(value)),
          fc.string(),
          fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
        ),
        async (file, content) => {
          const copy = path.join(await tempDir('fuzz-bundle'), `b${run++}`);
          await fs.cp(path.join(bundle, 'tuf'), path.join(copy, 'tuf'), { recursive: true });
          await fs.writeFile(path.join(copy, 'tuf', file), content);
          await refusesOrAccepts(async () => {
            const verified = await verifyBundleMetadata({ trustedDir: trusted, bundleTufDir: path.join(copy, 'tuf') });
            await fs.rm(verified.scratchDir, { recursive: true, force: true });
          });
          await fs.rm(copy, { recursive: true, force: true });
        },
      ),
      budget,
    );
  });
});
