import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { cli } from './cli.js';
import { tempDir, type TestFactory } from './factory.js';
import { makeDevice, type TestDevice } from './sim-device.js';

/** The `signed` part of tuf/bundle-targets.json in a single-file bundle (a tar), read without unpacking it. */
export async function bundleTargetsOf(file: string): Promise<Record<string, any>> {
  let found: Buffer | undefined;
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => {
      if (header.name === 'tuf/bundle-targets.json') chunks.push(chunk as Buffer);
    });
    stream.on('end', () => {
      if (header.name === 'tuf/bundle-targets.json') found = Buffer.concat(chunks);
      next();
    });
  });
  const done = new Promise((resolve, reject) => {
    extract.on('finish', () => resolve(undefined));
    extract.on('error', reject);
  });
  createReadStream(file).pipe(extract);
  await done;
  if (found === undefined) throw new Error(`${file} has no tuf/bundle-targets.json`);
  return JSON.parse(found.toString('utf8')).signed;
}

/**
 * A device at the factory's first target, provisioned with its decryption key, and the certificate the factory's
 * device CA (which must exist) issued for that key: a recipient of encrypted bundles.
 */
export async function certifiedRecipient(
  factory: TestFactory,
  extra: readonly string[] = [],
): Promise<{ device: TestDevice; certificate: string }> {
  const device = await makeDevice(factory, factory.v1);
  const provision = await cli('device', 'provision', '--config', device.configDir, ...extra);
  assert.equal(provision.code, 0, provision.stderr);
  const certificate = path.join(await tempDir('cert'), 'decryption.crt');
  const certify = await cli(
    'device',
    'certify',
    '--repo',
    factory.repo.dir,
    device.device.paths.decryptionRequestFile,
    '--out',
    certificate,
  );
  assert.equal(certify.code, 0, certify.stderr);
  return { device, certificate };
}
