import '../../tuf/models-patch.js';
import path from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { FerryError, describeCause } from '../../errors.js';
import { BUNDLE_TARGETS_FILE } from '../../tuf/bundle-targets.js';
import { parseExpires } from '../../tuf/expires.js';
import { offlineSignatures, offlineTargetsPolicy } from '../../tuf/offline-targets.js';
import { validSignatureKeyIds } from '../../tuf/signatures.js';
import { parseFioKey, type FioPublicKey } from '../../tuf/foundries/fio-keys.js';
import { countFioSignatures } from '../../tuf/foundries/fio-signatures.js';
import { detectStickFormat } from '../../tuf/foundries/stick-format.js';
import { readStickMetadataFiles } from '../../tuf/stick-files.js';
import { targetFromMetadata } from '../../tuf/target.js';
import { METADATA_MAX_BYTES } from '../../tuf/verify-metadata.js';
import { pathExists, readSmallFile } from '../../util/atomic-file.js';
import { staticDeltaName } from '../format/static-delta.js';
import { rootVersionsOf, type BundleDir } from '../format/bundle-dir.js';
import { treeBytes } from '../../util/free-space.js';

/** One metadata file of the bundle, its signatures counted against the newest root the bundle carries. */
export interface RoleSummary {
  readonly file: string;
  readonly role: string;
  readonly version: number;
  readonly expires: string;
  readonly signatures: number;
  readonly valid: number;
  readonly threshold: number;
  /** Valid signatures still needed to reach the threshold. */
  readonly missing: number;
  /** Whether its expiry has passed (by this machine's clock): devices refuse it (12). */
  readonly expired: boolean;
}

export interface TargetSummary {
  readonly name: string;
  readonly version: string;
  readonly hardwareIds: readonly string[];
  readonly tags: readonly string[];
  readonly commit: string;
  /** Whether ostree_repo/ holds the commit object; null in an encrypted bundle, whose content no one sees without a key. */
  readonly contentPresent: boolean | null;
  readonly apps: ReadonlyArray<{ readonly name: string; readonly uri: string; readonly statusGoal: string }>;
}

export interface BundleSummary {
  readonly type: string;
  readonly tags: readonly string[];
  readonly bundleVersion: number;
  /** The earliest expiry of any role: when the bundle as a whole stops being accepted. */
  readonly expires: string;
  /** The roles whose expiry has passed (by this machine's clock); any of them makes devices refuse the bundle. */
  readonly expired: readonly string[];
  readonly rootVersions: readonly number[];
  readonly roles: readonly RoleSummary[];
  readonly targets: readonly TargetSummary[];
  readonly signaturesMissing: number;
  /** For a production bundle whose root names offline targets keys: their signatures on bundle-targets.json. */
  readonly offline: { readonly valid: number; readonly threshold: number; readonly missing: number } | null;
  /** A delta bundle's base: the target whose content a device must already hold. */
  readonly base: { readonly target: string; readonly commit: string } | null;
  /** Set when the rootfs travels as one static delta file (export --rootfs static-delta) instead of ostree_repo/. */
  readonly rootfs: { readonly form: 'static-delta'; readonly file: string; readonly length: number } | null;
  readonly sizeBytes: number;
  /** An encrypted bundle: who it is encrypted to (each certificate's issuer and serial), and its ciphertext's size. */
  readonly encrypted: {
    readonly recipients: ReadonlyArray<{ readonly issuer: string; readonly serialNumber: string }>;
    readonly payloadBytes: number;
  } | null;
}

/** What `show` knows of an encrypted bundle without a key: the envelope's recipients and the file. */
export interface EncryptedBundleFacts {
  readonly recipients: ReadonlyArray<{ readonly issuer: string; readonly serialNumber: string }>;
  readonly fileBytes: number;
}

type Document = { signed: Record<string, unknown>; signatures: unknown[] };

async function readDocument(tufDir: string, file: string): Promise<Document> {
  let text: string;
  try {
    text = (await readSmallFile(path.join(tufDir, file), METADATA_MAX_BYTES)).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FerryError('METADATA_NOT_FOUND', `tuf/${file} is missing from the bundle`);
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: ${describeCause(error)}`, { cause: error });
  }
  try {
    const document = JSON.parse(text) as Document;
    if (typeof document.signed !== 'object' || document.signed === null || !Array.isArray(document.signatures))
      throw new Error('needs "signed" and "signatures"');
    return document;
  } catch (error) {
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: ${describeCause(error)}`, { cause: error });
  }
}

/** How many valid signatures of `role` a document carries, and how many it needs, by the newest root's keys. */
type SignatureCount = (file: string, role: string, document: Document) => { valid: number; threshold: number };

function ferryCount(root: Root): SignatureCount {
  return (_file, role, document) => ({
    valid: validSignatureKeyIds(root, role, document.signed, document.signatures).size,
    threshold: root.roles[role]?.threshold ?? 1,
  });
}

/** The Foundries format's count (aktualizr's keys, ids and methods); a signature it would refuse counts for nothing. */
function foundriesCount(rootFile: string, rootDocument: Document): SignatureCount {
  const signed = rootDocument.signed as {
    keys?: Record<string, unknown>;
    roles?: Record<string, { keyids?: unknown; threshold?: unknown }>;
  };
  const keys = new Map<string, FioPublicKey>();
  try {
    for (const [keyId, key] of Object.entries(signed.keys ?? {})) keys.set(keyId, parseFioKey(keyId, key, rootFile));
  } catch (error) {
    throw new FerryError('METADATA_MALFORMED', `tuf/${rootFile}: ${describeCause(error)}`, { cause: error });
  }
  return (file, roleName, document) => {
    const entry = signed.roles?.[roleName];
    const keyIds = Array.isArray(entry?.keyids)
      ? entry.keyids.filter((id): id is string => typeof id === 'string')
      : [];
    const threshold = typeof entry?.threshold === 'number' ? entry.threshold : 1;
    let valid = 0;
    try {
      valid = countFioSignatures({
        file,
        roleName,
        role: { keyIds, threshold },
        keys,
        signed: document.signed,
        signatures: document.signatures,
      });
    } catch {
      valid = 0;
    }
    return { valid, threshold };
  };
}

function summarize(file: string, role: string, document: Document, count: SignatureCount, now: Date): RoleSummary {
  const { valid, threshold } = count(file, role, document);
  const expires = document.signed['expires'];
  const date = parseExpires(expires);
  if (date === undefined)
    throw new FerryError('METADATA_MALFORMED', `tuf/${file}: expires ${JSON.stringify(expires)} is not a TUF date`);
  return {
    file,
    role,
    version: Number(document.signed['version']),
    expires: expires as string,
    signatures: document.signatures.length,
    valid,
    threshold,
    missing: Math.max(0, threshold - valid),
    expired: date.getTime() <= now.getTime(),
  };
}

/**
 * What a bundle says about itself, for people (`ferry show`): its type and tags, every role's version, expiry and
 * signatures against the newest root it carries, and its targets. Nothing here is trusted: `ferry verify` (or a
 * device) walks the root chain from a trusted root.
 */
export async function inspectBundle(
  bundle: BundleDir,
  now: Date = new Date(),
  encrypted?: EncryptedBundleFacts,
): Promise<BundleSummary> {
  const rootVersions = await rootVersionsOf(bundle.tufDir);
  const newest = rootVersions[rootVersions.length - 1]!;
  const rootFile = `${newest}.root.json`;
  const rootDocument = await readDocument(bundle.tufDir, rootFile);
  // A Foundries stick is read by that format's rules, as verify reads it; tuf-js reads ferry's, and whatever
  // cannot be told apart, which it then refuses as it always did.
  const foundries = await readStickMetadataFiles(bundle.tufDir)
    .then((files) => detectStickFormat(files) === 'foundries')
    .catch(() => false);
  let root: Root | undefined;
  let count: SignatureCount;
  if (foundries) count = foundriesCount(rootFile, rootDocument);
  else {
    try {
      root = (Metadata.fromJSON(MetadataKind.Root, rootDocument as never) as Metadata<Root>).signed;
    } catch (error) {
      throw new FerryError('METADATA_MALFORMED', `tuf/${rootFile}: ${describeCause(error)}`, { cause: error });
    }
    count = ferryCount(root);
  }
  const roles: RoleSummary[] = [summarize(rootFile, 'root', rootDocument, count, now)];
  const documents: Record<string, Document> = {};
  for (const role of ['timestamp', 'snapshot', 'targets'] as const) {
    documents[role] = await readDocument(bundle.tufDir, `${role}.json`);
    roles.push(summarize(`${role}.json`, role, documents[role]!, count, now));
  }
  const bundleDocument = await readDocument(bundle.tufDir, BUNDLE_TARGETS_FILE);
  roles.push(summarize(BUNDLE_TARGETS_FILE, 'targets', bundleDocument, count, now));

  const info = (bundleDocument.signed['x-fio-offline-bundle'] ?? bundleDocument.signed['x-ferry-bundle'] ?? {}) as {
    base?: { target?: unknown; commit?: unknown };
    encrypted?: { payload?: { length?: unknown } };
    rootfs?: { form?: unknown; file?: unknown; length?: unknown };
    type?: unknown;
    tag?: unknown;
    tags?: unknown;
    targets?: unknown;
  };
  const names = Array.isArray(info.targets)
    ? info.targets.filter((name): name is string => typeof name === 'string')
    : [];
  // A static delta's file, read as the metadata names it: `show` trusts nothing (verify checks it).
  const rootfs =
    info.rootfs?.form === 'static-delta' &&
    typeof info.rootfs.file === 'string' &&
    /^rootfs\/[0-9a-f]{64}\.delta$/.test(info.rootfs.file) &&
    typeof info.rootfs.length === 'number'
      ? { form: 'static-delta' as const, file: info.rootfs.file, length: info.rootfs.length }
      : null;
  const allTargets = (documents['targets']!.signed['targets'] ?? {}) as Record<
    string,
    { hashes?: Record<string, string>; custom?: Record<string, unknown> }
  >;
  const targets: TargetSummary[] = [];
  for (const name of names) {
    const entry = allTargets[name];
    const target = entry === undefined ? undefined : targetFromMetadata(name, entry.hashes ?? {}, entry.custom ?? {});
    if (target === undefined || 'invalid' in target) {
      targets.push({ name, version: '?', hardwareIds: [], tags: [], commit: '', contentPresent: false, apps: [] });
      continue;
    }
    targets.push({
      name,
      version: target.version,
      hardwareIds: target.hardwareIds,
      tags: target.tags,
      commit: target.commit,
      contentPresent:
        encrypted !== undefined
          ? null
          : rootfs === null
            ? await bundle.ostreeRepo.hasCommitObject(target.commit)
            : rootfs.file === staticDeltaName(target.commit) && (await pathExists(path.join(bundle.root, rootfs.file))),
      apps: Object.entries(target.apps).map(([app, pin]) => ({
        name: app,
        uri: pin.uri,
        // Without a signed goal the device derives it from the compose file.
        statusGoal: pin.statusGoal ?? 'from its compose file',
      })),
    });
  }
  const tags = Array.isArray(info.tags)
    ? info.tags.filter((tag): tag is string => typeof tag === 'string')
    : typeof info.tag === 'string'
      ? [info.tag]
      : [];
  // Offline targets keys are ferry's: a Foundries root has none apart from its targets keys.
  const policy = info.type === 'prod' && root !== undefined ? offlineTargetsPolicy(root) : null;
  const offlineValid =
    policy === null ? 0 : offlineSignatures(root!, policy, bundleDocument.signed, bundleDocument.signatures);
  const offline =
    policy === null
      ? null
      : { valid: offlineValid, threshold: policy.threshold, missing: Math.max(0, policy.threshold - offlineValid) };
  return {
    type: typeof info.type === 'string' ? info.type : '?',
    tags,
    bundleVersion: Number(bundleDocument.signed['version']),
    expires: roles.map((role) => role.expires).sort()[0]!,
    expired: roles.filter((role) => role.expired).map((role) => role.file),
    rootVersions,
    roles,
    targets,
    signaturesMissing: roles.reduce((sum, role) => sum + role.missing, 0) + (offline?.missing ?? 0),
    offline,
    base:
      typeof info.base?.target === 'string' && typeof info.base.commit === 'string'
        ? { target: info.base.target, commit: info.base.commit }
        : null,
    rootfs,
    sizeBytes: encrypted === undefined ? await treeBytes(bundle.root) : encrypted.fileBytes,
    encrypted:
      encrypted === undefined
        ? null
        : {
            recipients: encrypted.recipients,
            payloadBytes: typeof info.encrypted?.payload?.length === 'number' ? info.encrypted.payload.length : 0,
          },
  };
}

/** The summary as `ferry show` prints it. */
export function describeBundle(summary: BundleSummary): string {
  const lines = [
    `type ${summary.type}, tag${summary.tags.length === 1 ? '' : 's'} ${summary.tags.join(', ')}; bundle version ${summary.bundleVersion}; ${summary.sizeBytes} bytes`,
    summary.expired.length > 0
      ? `EXPIRED at ${summary.expires} (${summary.expired.join(', ')}): devices refuse it (12); export a fresh bundle`
      : `expires ${summary.expires} (the earliest expiry of its metadata)`,
    ...(summary.base === null
      ? []
      : [
          `a delta on top of ${summary.base.target} (commit ${summary.base.commit.slice(0, 12)}): devices must hold it`,
        ]),
    ...(summary.rootfs === null
      ? []
      : [`rootfs as one OSTree static delta: ${summary.rootfs.file} (${summary.rootfs.length} bytes)`]),
    ...(summary.encrypted === null
      ? []
      : [
          `encrypted (AES-256-GCM, ${summary.encrypted.payloadBytes} bytes of ciphertext) to ${summary.encrypted.recipients.length} recipient(s): ${summary.encrypted.recipients.map((recipient) => `serial ${recipient.serialNumber} of ${recipient.issuer}`).join('; ')}`,
        ]),
    `root versions ${summary.rootVersions.join(', ')}`,
    'metadata:',
    ...summary.roles.map(
      (role) =>
        `  ${role.file.padEnd(20)} version ${String(role.version).padEnd(4)} ${role.expired ? 'EXPIRED' : 'expires'} ${role.expires}  signatures ${role.valid}/${role.threshold} valid${role.signatures > role.valid ? ` (${role.signatures - role.valid} not counted)` : ''}${role.missing > 0 ? `, ${role.missing} missing` : ''}`,
    ),
    ...(summary.offline === null
      ? []
      : [
          `  offline targets keys on ${BUNDLE_TARGETS_FILE}: ${summary.offline.valid}/${summary.offline.threshold} valid${summary.offline.missing > 0 ? `, ${summary.offline.missing} missing` : ''}`,
        ]),
    'targets:',
    ...summary.targets.flatMap((target) => [
      `  ${target.name} version ${target.version}, hardware ${target.hardwareIds.join(', ')}, tags ${target.tags.join(', ')}, commit ${target.commit.slice(0, 12)}${target.contentPresent === null ? ' (content encrypted)' : target.contentPresent ? '' : ' (NOT on the stick)'}`,
      ...target.apps.map((app) => `    app ${app.name}: ${app.uri} (status goal: ${app.statusGoal})`),
    ]),
    summary.signaturesMissing > 0
      ? `signatures missing: ${summary.signaturesMissing} (add them with \`ferry bundle sign\`)`
      : 'signatures: every threshold is met',
  ];
  return lines.join('\n');
}
