import '../../tuf/models-patch.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { canonicalize } from '@tufjs/canonical-json';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { FerryError, describeCause } from '../../errors.js';
import { BUNDLE_TARGETS_FILE } from '../../tuf/bundle-targets.js';
import { signingKeyFromPem } from '../../tuf/keys.js';
import { offlineSignatures, offlineTargetsPolicy } from '../../tuf/offline-targets.js';
import { serializeMetadata } from '../../tuf/sign-metadata.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { fioRootKeyOf, fioSignatureOf, serializeFioMetadata } from '../../tuf/foundries/fio-sign.js';
import type { SigningKey } from '../../tuf/keys.js';
import { openSigner, readSignerSpec } from '../../tuf/signers/signer-spec.js';
import { openBundleDir, rootVersionsOf } from '../format/bundle-dir.js';

export interface SignResult {
  readonly keyId: string;
  /** False when the key had signed already: signing twice changes nothing. */
  readonly added: boolean;
  /** Offline signatures now on bundle-targets.json, against the root's offline threshold (null: no offline keys). */
  readonly offline: { readonly valid: number; readonly threshold: number } | null;
}

type SignedDocument = { signed: Record<string, unknown>; signatures: Array<{ keyid: string; sig: string }> };

/**
 * The key `bundle sign --key` names: a private key (PKCS#8 PEM), or a signer.json naming a key in a PKCS#11 token or
 * behind a signing command (README: Keys in an HSM), told apart by their first character.
 */
async function signingKeyOfFile(keyFile: string): Promise<SigningKey> {
  let text: string;
  try {
    text = await fs.readFile(keyFile, 'utf8');
  } catch (error) {
    throw new FerryError('KEY_FILE_INVALID', `cannot read ${keyFile}: ${describeCause(error)}`, { cause: error });
  }
  if (text.trimStart().startsWith('{')) return openSigner(await readSignerSpec(keyFile));
  try {
    return signingKeyFromPem(text);
  } catch (error) {
    throw new FerryError(
      'KEY_FILE_INVALID',
      `${keyFile} is not an ed25519 private key (PKCS#8 PEM) nor a signer.json: ${describeCause(error)}`,
      { cause: error },
    );
  }
}

/**
 * `bundle sign`: adds one targets-key signature to a bundle directory's bundle-targets.json, the way offline keys
 * countersign a production bundle. The key must be one the newest root in the bundle lists for the targets role.
 */
export async function signBundle(bundleDir: string, keyFile: string): Promise<SignResult> {
  const bundle = await openBundleDir(bundleDir);
  const key = await signingKeyOfFile(keyFile);
  const rootVersions = await rootVersionsOf(bundle.tufDir);
  const newest = rootVersions[rootVersions.length - 1]!;
  let root: Root | undefined;
  let foundriesRoot: { signed: { roles?: Record<string, { keyids?: unknown }> } } | undefined;
  let document: SignedDocument;
  try {
    const rootJson = JSON.parse(await fs.readFile(path.join(bundle.tufDir, `${newest}.root.json`), 'utf8'));
    document = JSON.parse(await fs.readFile(path.join(bundle.tufDir, BUNDLE_TARGETS_FILE), 'utf8'));
    // A Foundries stick (aktualizr capitalises _type) is signed in its own format.
    if (rootJson?.signed?._type === 'Root') foundriesRoot = rootJson;
    else root = (Metadata.fromJSON(MetadataKind.Root, rootJson) as Metadata<Root>).signed;
    if (typeof document.signed !== 'object' || !Array.isArray(document.signatures))
      throw new Error('not signed metadata');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FerryError('METADATA_NOT_FOUND', `the bundle lacks ${describeCause(error)}`, { cause: error });
    throw new FerryError('METADATA_MALFORMED', `the bundle's metadata: ${describeCause(error)}`, { cause: error });
  }
  if (foundriesRoot !== undefined) return signFoundriesBundle(bundle.tufDir, newest, foundriesRoot, document, key);
  if (root === undefined) throw new Error('unreachable: a root is read above');
  if (!(root.roles['targets']?.keyIDs ?? []).includes(key.keyId)) {
    throw new FerryError(
      'KEY_NOT_AUTHORIZED',
      `key ${key.keyId} is not a targets key of root.json version ${newest}; a device would not count its signature`,
    );
  }
  const added = !document.signatures.some((signature) => signature.keyid === key.keyId);
  if (added) {
    const signatures = [
      ...document.signatures,
      { keyid: key.keyId, sig: key.signHex(Buffer.from(canonicalize(document.signed))) },
    ];
    document = { ...document, signatures };
    await writeFileAtomic(path.join(bundle.tufDir, BUNDLE_TARGETS_FILE), serializeMetadata(document));
  }
  const policy = offlineTargetsPolicy(root);
  return {
    keyId: key.keyId,
    added,
    offline:
      policy === null
        ? null
        : { valid: offlineSignatures(root, policy, document.signed, document.signatures), threshold: policy.threshold },
  };
}

/**
 * bundle sign on a Foundries stick, as fioctl's sign-bundle does it: a signature `{keyid, method, sig}` by a targets
 * key of the newest root, under the key's Foundries id. Its roots carry no offline keys apart from the targets keys.
 */
async function signFoundriesBundle(
  tufDir: string,
  newest: number,
  rootJson: { signed: { roles?: Record<string, { keyids?: unknown }> } },
  document: SignedDocument,
  key: SigningKey,
): Promise<SignResult> {
  const { keyId } = fioRootKeyOf(key);
  const keyIds = rootJson.signed.roles?.['targets']?.keyids;
  if (!Array.isArray(keyIds) || !keyIds.includes(keyId)) {
    throw new FerryError(
      'KEY_NOT_AUTHORIZED',
      `key ${keyId} is not a targets key of root.json version ${newest}; a device would not count its signature`,
    );
  }
  const added = !document.signatures.some((signature) => signature.keyid === keyId);
  if (added) {
    const signed = { ...document, signatures: [...document.signatures, fioSignatureOf(document.signed, key)] };
    await writeFileAtomic(path.join(tufDir, BUNDLE_TARGETS_FILE), serializeFioMetadata(signed));
  }
  return { keyId, added, offline: null };
}
