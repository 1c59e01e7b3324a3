import { verify } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, TargetFile, Targets, type Root } from '@tufjs/models';
import { UnsignedMetadataError } from '@tufjs/models/dist/error.js';
import { getPublicKey } from '@tufjs/models/dist/utils/key.js';

/**
 * @tufjs/models 4.1.1 builds and serializes a targets map with an object spread inside a reduce: quadratic in the
 * number of targets (about 30 s to read a targets.json of 10,000 targets, a minute to sign one). Both are replaced
 * here by one pass that gives the same objects and the same JSON, so that a factory's full targets.json costs what
 * reading it costs. The loops walk the map with for...in (own keys only, in the same order as Object.entries) so as
 * not to make and collect an array of 10,000 pairs on every read. Imported for its effect by every module that reads
 * or signs metadata.
 */
function isObjectRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  for (const name in value) {
    const entry = (value as Record<string, unknown>)[name];
    if (Object.hasOwn(value, name) && (typeof entry !== 'object' || entry === null)) return false;
  }
  return true;
}

type TargetsStatics = { fromJSON(data: Record<string, unknown>): Targets };
const originalFromJSON = (Targets as unknown as TargetsStatics).fromJSON.bind(Targets);
const originalToJSON = Targets.prototype.toJSON;

(Targets as unknown as TargetsStatics).fromJSON = (data: Record<string, unknown>): Targets => {
  const { targets, ...rest } = data;
  // Everything but the map goes through the models' own parser, with its checks.
  const parsed = originalFromJSON(rest);
  if (targets !== undefined) {
    if (!isObjectRecord(targets)) throw new TypeError('targets must be an object');
    for (const name in targets) {
      if (Object.hasOwn(targets, name))
        parsed.targets[name] = TargetFile.fromJSON(name, targets[name] as Parameters<typeof TargetFile.fromJSON>[1]);
    }
  }
  return parsed;
};

Targets.prototype.toJSON = function toJSON(this: Targets) {
  const self = this as { targets: Targets['targets'] };
  const targets = self.targets;
  self.targets = {};
  let json: Record<string, unknown>;
  try {
    json = originalToJSON.call(this) as Record<string, unknown>;
  } finally {
    self.targets = targets;
  }
  const map: Record<string, unknown> = {};
  for (const name in targets) if (Object.hasOwn(targets, name)) map[name] = targets[name]!.toJSON();
  json['targets'] = map;
  return json as ReturnType<typeof originalToJSON>;
};

/**
 * Metadata.verifyDelegate checks each key of the role with Key.verifySignature, and each call turns the metadata
 * into JSON and canonicalizes it anew: a targets.json with two targets keys (a production factory's online and
 * offline key) was canonicalized twice, and that is the costliest step of verifying 10,000 targets. Within one
 * verifyDelegate call the metadata does not change, so the canonical bytes are made once, for the first key that
 * has a signature to check, and every key checks its signature over those same bytes. The role, the keys, the
 * threshold and each key's checks stay tuf-js's own: verifyDelegate is the models' code, and the key check below
 * is Key.verifySignature's (with utils/verify's crypto.verify), step for step, only with the bytes made once.
 */
type AnyMetadata = Parameters<Metadata<Root>['verifyDelegate']>[1];
const originalVerifyDelegate = Metadata.prototype.verifyDelegate;
const originalVerifySignature = Key.prototype.verifySignature;
/** The metadata of the verifyDelegate call under way, and its canonical bytes once made. */
let delegation: { readonly metadata: AnyMetadata; bytes?: Buffer } | undefined;

Metadata.prototype.verifyDelegate = function verifyDelegate(
  this: AnyMetadata,
  delegatedRole: string,
  delegatedMetadata: AnyMetadata,
): void {
  const outer = delegation;
  delegation = { metadata: delegatedMetadata };
  try {
    originalVerifyDelegate.call(this, delegatedRole, delegatedMetadata);
  } finally {
    delegation = outer;
  }
};

Key.prototype.verifySignature = function verifySignature(this: Key, metadata: AnyMetadata): void {
  const scope = delegation;
  if (scope?.metadata !== metadata) return originalVerifySignature.call(this, metadata);
  const signature = metadata.signatures[this.keyID];
  if (!signature) throw new UnsignedMetadataError('no signature for key found in metadata');
  if (!this.keyVal['public']) throw new UnsignedMetadataError('no public key found');
  const publicKey = getPublicKey({ keyType: this.keyType, scheme: this.scheme, keyVal: this.keyVal['public'] });
  let valid = false;
  try {
    scope.bytes ??= Buffer.from(canonicalize(metadata.signed.toJSON()));
    valid = verify(undefined, scope.bytes, publicKey, Buffer.from(signature.sig, 'hex'));
  } catch {
    valid = false;
  }
  if (!valid) throw new UnsignedMetadataError(`failed to verify ${this.keyID} signature`);
};

/** The models' own code, for the test that checks the patched code gives the same answers. */
export const unpatched = {
  verifyDelegate: originalVerifyDelegate,
  verifySignature: originalVerifySignature,
};
