import { randomBytes, type X509Certificate } from 'node:crypto';
import { removeTree } from '../../util/remove-tree.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../../errors.js';
import type { FactoryRepo } from '../../repo/factory-repo.js';
import { serializeIn } from '../../repo/metadata-format.js';
import {
  BUNDLE_TARGETS_FILE,
  signBundleTargets,
  type BundleTargetsSigned,
  type EncryptedParts,
} from '../../tuf/bundle-targets.js';
import { membersOfDirectory, packTar, writeTar, type TarMember } from '../../util/tar-pack.js';
import {
  ENVELOPE_MEMBER,
  PAYLOAD_MAX_BYTES,
  PAYLOAD_MEMBER,
  contentCipher,
  fileDigestOf,
  DigestCounter,
  type ContentKeyParams,
} from '../format/encrypted-bundle.js';
import { bundleLayout } from '../format/bundle-dir.js';
import { checkArchiveFitsMedia } from './archive-pack.js';
import type { ExportPlan } from './export-plan.js';
import { scratchDir } from './export-scratch.js';
import {
  exportVerifyFailed,
  verifyExportMetadata,
  writeBundleTree,
  writeMediaFile,
  type WrittenTree,
} from './export-tree.js';

/**
 * `export --encrypt-to`: the bundle tree is built beside the factory repo, as for an archive; its ostree_repo/ and
 * apps/ are packed as a tar and encrypted with a fresh AES-256-GCM key, whose key envelope names every recipient;
 * bundle-targets.json is signed again with the digests of the envelope and the ciphertext; and the media gets one
 * file (src/bundle/format/encrypted-bundle.ts), written once.
 *
 * The digests must be signed before the file is written, and tuf/ precedes the payload in it so that a device reads
 * the metadata without reading the payload. So the payload is encrypted twice with the same fresh key and nonce: once
 * to learn its digest and tag (nothing is kept), once into the file. Both encrypt the same tar of the same files, so
 * both give the same bytes; the second is checked against the first, and a file whose bytes differ is removed. No
 * other plaintext is ever encrypted under that key and nonce.
 */
export async function writeEncryptedBundle(
  repo: FactoryRepo,
  plan: ExportPlan,
  recipients: readonly X509Certificate[],
): Promise<WrittenTree> {
  const { options, media } = plan;
  const tree = await scratchDir(repo, 'tree');
  try {
    const written = await writeBundleTree(repo, plan, { destination: tree, scratchTree: true });
    // Countersignatures are added to bundle-targets.json afterwards (bundle sign), which would change the signed file
    // inside the encrypted one: such a bundle is refused here, with nothing written to the media.
    if (written.result.offlineSignaturesMissing > 0)
      throw new FerryError(
        'USAGE',
        `this production bundle needs ${written.result.offlineSignaturesMissing} more offline signature(s) (ferry bundle sign), which an encrypted bundle cannot take once written: export it without --encrypt-to`,
      );
    const payloadMembers = (await membersOfDirectory(tree)).filter(
      (member) =>
        member.name.startsWith('ostree_repo') || member.name.startsWith('rootfs') || member.name.startsWith('apps'),
    );
    const params: ContentKeyParams = { key: randomBytes(32), nonce: randomBytes(12) };
    const sealed = await encryptPayload(payloadMembers, params, new Writable({ write: (_c, _e, done) => done() }));
    if (sealed.digest.length > PAYLOAD_MAX_BYTES)
      throw new FerryError(
        'USAGE',
        `the bundle's content is ${sealed.digest.length} bytes; AES-GCM encrypts at most ${PAYLOAD_MAX_BYTES} under one key: export it without --encrypt-to, or split it`,
      );
    const { sealKeyEnvelope } = await import('../format/key-envelope.js');
    const envelope = sealKeyEnvelope(recipients, { ...params, tag: sealed.tag });
    const parts: EncryptedParts = { envelope: fileDigestOf(envelope), payload: sealed.digest };
    const tufDir = path.join(tree, 'tuf');
    await signEncryptedParts(repo, plan, tufDir, parts);
    // Checked again from the trusted root, as the device will: the bundle-targets.json it reads is this one.
    await verifyExportMetadata(repo, bundleLayout(tree), options.targetName, written.result.commit, plan.now);

    const tufMembers = (await membersOfDirectory(tufDir))
      .filter((member) => member.type === 'file-from')
      .map((member) => ({ ...member, name: `tuf/${member.name}` }));
    let second: { digest: EncryptedParts['payload']; tag: Buffer } | undefined;
    const members: TarMember[] = [
      { type: 'file', name: ENVELOPE_MEMBER, content: envelope },
      ...tufMembers,
      {
        type: 'stream',
        name: PAYLOAD_MEMBER,
        size: parts.payload.length,
        open: () => {
          const counter = new DigestCounter();
          const cipher = contentCipher(params);
          const output = packTar(payloadMembers).pipe(cipher).pipe(counter);
          counter.on('end', () => {
            second = { digest: counter.digest(), tag: cipher.getAuthTag() };
          });
          return output;
        },
      },
    ];
    await checkArchiveFitsMedia([...tufMembers, ...payloadMembers], options.destination, media);
    await writeMediaFile(options.destination, media, async (partial) => {
      await writeTar(partial, members, { gzip: false });
      if (second === undefined || second.digest.sha256 !== parts.payload.sha256 || !second.tag.equals(sealed.tag))
        throw exportVerifyFailed(
          new Error('the payload encrypted into the file differs from the one whose digest was signed'),
          'the encrypted bundle',
        );
    });
    return { ...written, result: { ...written.result, destination: options.destination } };
  } finally {
    await removeTree(tree);
  }
}

/** Encrypts the tar of `members` into `sink`: the ciphertext's digest and the GCM tag. */
async function encryptPayload(
  members: readonly TarMember[],
  params: ContentKeyParams,
  sink: Writable,
): Promise<{ digest: EncryptedParts['payload']; tag: Buffer }> {
  const cipher = contentCipher(params);
  const counter = new DigestCounter();
  await pipeline(packTar(members), cipher, counter, sink);
  return { digest: counter.digest(), tag: cipher.getAuthTag() };
}

/** Signs bundle-targets.json again, now naming the envelope's and the payload's digests. */
async function signEncryptedParts(repo: FactoryRepo, plan: ExportPlan, tufDir: string, parts: EncryptedParts) {
  const file = path.join(tufDir, BUNDLE_TARGETS_FILE);
  const document = JSON.parse(await fs.readFile(file, 'utf8')) as { signed: BundleTargetsSigned };
  const signed: BundleTargetsSigned = {
    ...document.signed,
    'x-ferry-bundle': { ...document.signed['x-ferry-bundle'], encrypted: parts },
  };
  const keys = await repo.keys.load('targets');
  await fs.writeFile(file, serializeIn(plan.format, signBundleTargets(signed, keys)));
}
