import { verify, type KeyObject } from 'node:crypto';
import { FerryError } from '../../errors.js';

/**
 * A signature made outside ferry (in a token, by a command) is checked against the key's public half before it is
 * used: a token that signs with another key than the one labelled, or a command that answers anything else, must
 * fail here, on the workstation, and not on a device in the field.
 */
export function checkedSignature(publicKey: KeyObject, data: Uint8Array, signature: Buffer, signer: string): Buffer {
  if (signature.length !== 64 || !verify(null, data, publicKey, signature)) {
    throw new FerryError(
      'SIGNER_FAILED',
      `${signer} returned a signature that does not verify against its public key (${signature.length} bytes)`,
    );
  }
  return signature;
}
