import { spawnSync } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { FerryError, oneLine } from '../../errors.js';
import { signingKeyWith, type SigningKey } from '../keys.js';
import { checkedSignature } from './checked-signature.js';

/**
 * A key held by another program: a cloud KMS's command line, a script that hands the bytes to an offline machine.
 * ferry runs the command with the exact bytes to sign on its stdin; the command prints the ed25519 signature on its
 * stdout (64 raw bytes, or them in hex or base64) and exits 0. The public key is given in the configuration, and
 * every signature is checked against it before ferry uses it.
 */
export interface CommandSignerSpec {
  readonly kind: 'command';
  /** The program and its arguments, run without a shell. */
  readonly command: readonly string[];
  /** The ed25519 public key (SubjectPublicKeyInfo PEM). */
  readonly publicKeyPem: string;
}

/** The signature a command printed: raw bytes, or text holding them in hex or base64 (as KMS command lines print). */
function decodeSignature(output: Buffer): Buffer {
  if (output.length === 64) return output;
  const text = output.toString('latin1').trim();
  if (/^[0-9a-fA-F]{128}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{86}==$/.test(text)) return Buffer.from(text, 'base64');
  return output;
}

export function commandSigningKey(spec: CommandSignerSpec, publicKey: KeyObject): SigningKey {
  const [program, ...args] = spec.command;
  const signer = `the signing command ${program ?? '(none)'}`;
  return signingKeyWith(publicKey, (data) => {
    const result = spawnSync(program!, args, { input: data, maxBuffer: 1 << 20 });
    if (result.error !== undefined)
      throw new FerryError('SIGNER_FAILED', `${signer} cannot run: ${result.error.message}`, { cause: result.error });
    if (result.status !== 0) {
      const how =
        result.status === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with ${result.status}`;
      const said = oneLine(result.stderr.toString('utf8'));
      throw new FerryError('SIGNER_FAILED', `${signer} ${how}${said === '' ? '' : `: ${said}`}`);
    }
    return checkedSignature(publicKey, data, decodeSignature(result.stdout), signer);
  });
}
