import { createPrivateKey, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { openBundleSource } from '../../bundle/format/bundle-source.js';
import {
  verifyBundle,
  verifyBundleContent,
  verifyBundleMetadataOf,
  type VerifiedBundleMetadata,
} from '../../bundle/workstation/verify-bundle.js';
import type { BundleDir } from '../../bundle/format/bundle-dir.js';
import { signedPartsOf, type SealedBundle } from '../../bundle/format/encrypted-bundle.js';
import { isP256Key } from '../../ca/ed25519-x509.js';
import { FerryError, describeCause } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import type { EncryptedParts } from '../../tuf/bundle-targets.js';
import { progressFor, type CommandContext } from '../command-context.js';
import { progressFdOption } from '../shared-options.js';

/** verify: a release engineer's check that a device would take a bundle, before it ships. */
export function registerVerifyCommand(program: Command, { io, setReport }: CommandContext): void {
  program
    .command('verify <bundle>')
    .description(
      'check a bundle before it ships: every signature and expiry from a trusted root, every target, OSTree object and app blob; exit 0 only if a device would take it',
    )
    .option(
      '--trusted-root <file>',
      "the root.json devices trust (default: the bundle's own 1.root.json, which proves only self-consistency)",
    )
    .option(
      '--decryption-key <file>',
      "an encrypted bundle: a recipient's P-256 private key (PEM), to decrypt the content and check it too; without it the envelope and the ciphertext are checked against their signed digests, the content is not",
    )
    .addOption(progressFdOption())
    .option('--json', 'print the result as one JSON object')
    .action(
      async (
        bundlePath: string,
        options: { trustedRoot?: string; decryptionKey?: string; progressFd?: number; json?: boolean },
      ) => {
        const source = await openBundleSource(path.resolve(bundlePath), os.tmpdir());
        const progress = progressFor(io, options);
        try {
          const trustedRoot = options.trustedRoot ?? path.join(source.bundle.tufDir, '1.root.json');
          const verifyOptions = { trustedRoot: path.resolve(trustedRoot), progress: progress.listener };
          if (source.sealed === undefined && options.decryptionKey !== undefined)
            throw new FerryError('USAGE', `--decryption-key is for an encrypted bundle; ${bundlePath} is not one`);
          const encrypted =
            source.sealed === undefined
              ? undefined
              : await verifyEncrypted(source.sealed, source.bundle, verifyOptions, options.decryptionKey).catch(
                  (error: unknown) => {
                    progress.stop();
                    throw error;
                  },
                );
          if (encrypted?.content === false) {
            progress.stop();
            const { metadata } = encrypted;
            const names = metadata.targets.map((target) => `${target.name} (version ${target.version})`).join(', ');
            setReport(
              {
                outcome: 'OK',
                message: `verified: a "${metadata.bundle.type}" bundle for tag ${metadata.bundle.tag}, root version ${metadata.rootVersion}, expires ${metadata.bundle.expires.toISOString()}; targets ${names}; encrypted: its envelope and ${encrypted.parts.payload.length} bytes of ciphertext match their signed digests; the content was not checked (give --decryption-key to check it too)`,
                data: {
                  type: metadata.bundle.type,
                  tag: metadata.bundle.tag,
                  rootVersion: metadata.rootVersion,
                  targets: metadata.targets.map((target) => ({
                    name: target.name,
                    version: target.version,
                    hardwareIds: target.hardwareIds,
                    commit: target.commit,
                  })),
                  encrypted: { payloadBytes: encrypted.parts.payload.length, contentChecked: false },
                  trustedRoot,
                },
              },
              options.json ?? false,
            );
            return;
          }
          const verified = await (
            encrypted === undefined
              ? verifyBundle(source.bundle, verifyOptions)
              : verifyBundleContent(source.bundle, encrypted.metadata, verifyOptions)
          ).finally(() => progress.stop());
          const names = verified.targets.map((target) => `${target.name} (version ${target.version})`).join(', ');
          setReport(
            {
              outcome: 'OK',
              message: `verified: a "${verified.bundle.type}" bundle for tag ${verified.bundle.tag}, root version ${verified.rootVersion}, expires ${verified.bundle.expires.toISOString()}; targets ${names}; ${verified.blobsChecked} app blobs checked; ${verified.sizeBytes} bytes`,
              data: {
                type: verified.bundle.type,
                tag: verified.bundle.tag,
                rootVersion: verified.rootVersion,
                targets: verified.targets.map((target) => ({
                  name: target.name,
                  version: target.version,
                  hardwareIds: target.hardwareIds,
                  commit: target.commit,
                })),
                blobsChecked: verified.blobsChecked,
                sizeBytes: verified.sizeBytes,
                ...(encrypted === undefined
                  ? {}
                  : { encrypted: { payloadBytes: encrypted.parts.payload.length, contentChecked: true } }),
                trustedRoot,
              },
            },
            options.json ?? false,
          );
        } finally {
          await source.close();
        }
      },
    );
}

/**
 * An encrypted bundle: its metadata from the trusted root, then its envelope and ciphertext against the digests the
 * metadata signs; with a recipient's key, the content decrypted, for verifyBundleContent to check.
 */
async function verifyEncrypted(
  sealed: SealedBundle,
  bundle: BundleDir,
  options: { trustedRoot: string; progress: ProgressListener | undefined },
  keyFile: string | undefined,
): Promise<{ metadata: VerifiedBundleMetadata; parts: EncryptedParts; content: boolean }> {
  const metadata = await verifyBundleMetadataOf(bundle, options);
  const parts = signedPartsOf(metadata.bundle.encrypted, sealed.file);
  if (keyFile === undefined) {
    await sealed.checkCiphertext(parts, options.progress);
    return { metadata, parts, content: false };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(await fs.readFile(path.resolve(keyFile)));
  } catch (error) {
    throw new FerryError(
      'DEVICE_KEY_INVALID',
      `--decryption-key ${keyFile}: not a PEM private key: ${describeCause(error)}`,
      {
        cause: error,
      },
    );
  }
  if (!isP256Key(key))
    throw new FerryError(
      'DEVICE_KEY_INVALID',
      `--decryption-key ${keyFile}: an ${key.asymmetricKeyType ?? 'unknown'} key, not an EC P-256 private key`,
    );
  await sealed.unseal(parts, [key], options.progress);
  return { metadata, parts, content: true };
}
