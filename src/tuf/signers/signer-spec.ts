import { createPublicKey, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../../errors.js';
import type { SigningKey } from '../keys.js';
import { commandSigningKey, type CommandSignerSpec } from './command-signer.js';
import { pkcs11SigningKey, type Pkcs11SignerSpec } from './pkcs11-signer.js';

/**
 * Where a signing key lives when it is not a PEM file in keys/<role>/: a `signer.json` names it.
 *   {"kind": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so", "token": "ferry", "label": "targets",
 *    "pin-source": "env:FERRY_PKCS11_PIN"}
 *   {"kind": "command", "command": ["kms-sign", "--key", "release"], "public-key": "release.pub.pem"}
 * A factory keeps one per key as keys/<role>/<keyid>.signer.json; the same file can be given to `repo init
 * --signer`, `keys rotate --signer`, `keys add-offline --signer` and `bundle sign --key`.
 */
export type SignerSpec = Pkcs11SignerSpec | CommandSignerSpec;

export const DEFAULT_PIN_SOURCE = 'env:FERRY_PKCS11_PIN';

function invalid(file: string, reason: string): FerryError {
  return new FerryError('KEY_FILE_INVALID', `${file} is not a signer configuration: ${reason}`);
}

function ed25519PublicKey(pem: string, file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw invalid(file, `its public-key is not a PEM public key (${describeCause(error)})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw invalid(file, 'its public-key is not an ed25519 key');
  return key;
}

/** Reads a signer.json; a command signer's `public-key` may name a PEM file, relative to the signer.json. */
export async function readSignerSpec(file: string): Promise<SignerSpec> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw invalid(file, describeCause(error));
  }
  if (typeof json !== 'object' || json === null) throw invalid(file, 'not a JSON object');
  const text = (name: string): string => {
    const value = json[name];
    if (typeof value !== 'string' || value === '') throw invalid(file, `"${name}" must be a non-empty string`);
    return value;
  };
  if (json['kind'] === 'pkcs11') {
    const pinSource = json['pin-source'] === undefined ? DEFAULT_PIN_SOURCE : text('pin-source');
    if (!/^(env|file):./.test(pinSource))
      throw invalid(file, `pin-source "${pinSource}" is neither env:NAME nor file:/path`);
    return { kind: 'pkcs11', module: text('module'), token: text('token'), label: text('label'), pinSource };
  }
  if (json['kind'] === 'command') {
    const command = json['command'];
    if (!Array.isArray(command) || command.length === 0 || !command.every((part) => typeof part === 'string'))
      throw invalid(file, '"command" must be a non-empty list of strings (the program and its arguments)');
    const given = text('public-key');
    let publicKeyPem = given;
    if (!given.startsWith('-----BEGIN')) {
      try {
        publicKeyPem = await fs.readFile(path.resolve(path.dirname(file), given), 'utf8');
      } catch (error) {
        throw invalid(file, `cannot read its public-key ${given}: ${describeCause(error)}`);
      }
    }
    ed25519PublicKey(publicKeyPem, file);
    return { kind: 'command', command: command as string[], publicKeyPem };
  }
  throw invalid(file, '"kind" must be "pkcs11" or "command"');
}

/**
 * The signing key a spec names. With `create`, a PKCS#11 token without a key of that label makes one; a command
 * signer's key is made wherever it lives, before its public key is given here.
 */
export function openSigner(spec: SignerSpec, options: { readonly create?: boolean } = {}): SigningKey {
  if (spec.kind === 'pkcs11') return pkcs11SigningKey(spec, options);
  return commandSigningKey(spec, ed25519PublicKey(spec.publicKeyPem, 'the signer configuration'));
}

/** The signer.json a factory keeps for a key: self-contained (a command signer's public key written in it). */
export function serializeSignerSpec(spec: SignerSpec): string {
  const json =
    spec.kind === 'pkcs11'
      ? { kind: spec.kind, module: spec.module, token: spec.token, label: spec.label, 'pin-source': spec.pinSource }
      : { kind: spec.kind, command: spec.command, 'public-key': spec.publicKeyPem };
  return `${JSON.stringify(json, null, 2)}\n`;
}
