import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { Metadata, MetadataKind } from '@tufjs/models';
import { generateSigningKey, keyIdOf, signingKeyFromPem } from '../../src/tuf/keys.js';
import { signRole } from '../../src/tuf/sign-metadata.js';

describe('ed25519 keys', () => {
  test('the key id is sha256 over the canonical JSON of keytype, scheme and keyval, as securesystemslib computes it', () => {
    const publicHex = 'a'.repeat(64);
    const expected = createHash('sha256')
      .update(`{"keytype":"ed25519","keyval":{"public":"${publicHex}"},"scheme":"ed25519"}`)
      .digest('hex');
    assert.equal(keyIdOf({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicHex } }), expected);
  });

  test('a generated key survives a PEM round trip with the same key id, and its public key is 32 raw bytes in hex', () => {
    const { key, privatePem } = generateSigningKey();
    assert.match(key.publicKey.keyval.public, /^[0-9a-f]{64}$/);
    assert.equal(signingKeyFromPem(privatePem).keyId, key.keyId);
    assert.equal(key.keyId, keyIdOf(key.publicKey));
  });

  test('metadata signed by ferry verifies with @tufjs/models, and fails once a byte of the signed part changes', () => {
    const { key } = generateSigningKey();
    const rootSigned = {
      _type: 'root',
      spec_version: '1.0.31',
      version: 1,
      expires: '2030-01-01T00:00:00Z',
      consistent_snapshot: false,
      keys: { [key.keyId]: key.publicKey },
      roles: Object.fromEntries(
        ['root', 'targets', 'snapshot', 'timestamp'].map((role) => [role, { keyids: [key.keyId], threshold: 1 }]),
      ),
    };
    const document = signRole('root', rootSigned, [key]);
    const root = Metadata.fromJSON(MetadataKind.Root, document as never);
    assert.doesNotThrow(() => root.verifyDelegate('root', root));

    const tampered = Metadata.fromJSON(MetadataKind.Root, {
      ...document,
      signed: { ...rootSigned, version: 2 },
    } as never);
    assert.throws(() => root.verifyDelegate('root', tampered), /signed by 0\/1 keys/);
  });
});
