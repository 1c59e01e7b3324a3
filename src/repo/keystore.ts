import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { generateSigningKey, signingKeyFromPem, type SigningKey } from '../tuf/keys.js';
import type { RoleName } from '../tuf/sign-metadata.js';

/**
 * Private keys of the factory repository: `keys/<role>/<keyid>.pem`, PKCS#8, readable by the owner only.
 * The key id in the file name is checked against the key on every load.
 */
export class KeyStore {
  constructor(readonly dir: string) {}

  async create(role: RoleName): Promise<SigningKey> {
    const { key, privatePem } = generateSigningKey();
    await this.store(role, key, privatePem);
    return key;
  }

  async store(role: RoleName, key: SigningKey, privatePem: string): Promise<void> {
    const roleDir = path.join(this.dir, role);
    await fs.mkdir(roleDir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    await fs.chmod(roleDir, 0o700);
    await fs.writeFile(path.join(roleDir, `${key.keyId}.pem`), privatePem, { mode: 0o600, flag: 'wx' });
  }

  /** Moves a replaced key out of use, into `keys/<role>/retired/`: kept, never signed with again. */
  async retire(role: RoleName, keyId: string): Promise<void> {
    const retired = path.join(this.dir, role, 'retired');
    await fs.mkdir(retired, { recursive: true, mode: 0o700 });
    await fs.rename(path.join(this.dir, role, `${keyId}.pem`), path.join(retired, `${keyId}.pem`));
  }

  async load(role: RoleName): Promise<SigningKey[]> {
    const roleDir = path.join(this.dir, role);
    let names: string[];
    try {
      names = (await fs.readdir(roleDir)).filter((name) => name.endsWith('.pem')).sort();
    } catch (error) {
      throw new FerryError('REPO_INVALID', `cannot read the ${role} keys in ${roleDir}: ${describeCause(error)}`, {
        cause: error,
      });
    }
    const keys: SigningKey[] = [];
    for (const name of names) {
      const key = signingKeyFromPem(await fs.readFile(path.join(roleDir, name), 'utf8'));
      if (`${key.keyId}.pem` !== name)
        throw new FerryError(
          'REPO_INVALID',
          `${path.join(roleDir, name)} holds key ${key.keyId}, not the one its name says`,
        );
      keys.push(key);
    }
    if (keys.length === 0) throw new FerryError('REPO_INVALID', `no ${role} keys in ${roleDir}`);
    return keys;
  }
}
