import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FerryError, describeCause } from '../errors.js';
import { signingKeyFromPem, type SigningKey } from '../tuf/keys.js';
import type { RoleName } from '../tuf/sign-metadata.js';
import { openSigner, readSignerSpec, serializeSignerSpec, type SignerSpec } from '../tuf/signers/signer-spec.js';

const PEM_SUFFIX = '.pem';
const SIGNER_SUFFIX = '.signer.json';

/**
 * The signing keys of the factory repository, one file per key in `keys/<role>/`, readable by the owner only:
 * `<keyid>.pem`, a private key (PKCS#8), or `<keyid>.signer.json`, where a key that never touches this disk lives
 * (a PKCS#11 token, a signing command; see src/tuf/signers/). The key id in the file name is checked against the
 * key on every load: a token whose label now names another key is refused, not signed with.
 */
export class KeyStore {
  constructor(readonly dir: string) {}

  async store(role: RoleName, key: SigningKey, privatePem: string): Promise<void> {
    await this.write(role, `${key.keyId}${PEM_SUFFIX}`, privatePem);
  }

  /** Records a key held outside the repository: its signer.json, never a private key. */
  async storeSigner(role: RoleName, key: SigningKey, spec: SignerSpec): Promise<void> {
    await this.write(role, `${key.keyId}${SIGNER_SUFFIX}`, serializeSignerSpec(spec));
  }

  private async write(role: RoleName, name: string, content: string): Promise<void> {
    const roleDir = path.join(this.dir, role);
    await fs.mkdir(roleDir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    await fs.chmod(roleDir, 0o700);
    await fs.writeFile(path.join(roleDir, name), content, { mode: 0o600, flag: 'wx' });
  }

  /** Moves a replaced key out of use, into `keys/<role>/retired/`: kept, never signed with again. */
  async retire(role: RoleName, keyId: string): Promise<void> {
    const retired = path.join(this.dir, role, 'retired');
    await fs.mkdir(retired, { recursive: true, mode: 0o700 });
    for (const suffix of [PEM_SUFFIX, SIGNER_SUFFIX]) {
      try {
        await fs.rename(path.join(this.dir, role, `${keyId}${suffix}`), path.join(retired, `${keyId}${suffix}`));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }

  /**
   * Reaches every key of `roles` (a token is logged in to, its PIN checked) before a command writes anything: a key
   * that cannot sign then refuses the command while the factory and the media are still as they were.
   */
  async reach(roles: readonly RoleName[]): Promise<void> {
    for (const role of roles) await this.load(role);
  }

  async load(role: RoleName): Promise<SigningKey[]> {
    const roleDir = path.join(this.dir, role);
    let names: string[];
    try {
      names = (await fs.readdir(roleDir))
        .filter((name) => name.endsWith(PEM_SUFFIX) || name.endsWith(SIGNER_SUFFIX))
        .sort();
    } catch (error) {
      throw new FerryError('REPO_INVALID', `cannot read the ${role} keys in ${roleDir}: ${describeCause(error)}`, {
        cause: error,
      });
    }
    const keys: SigningKey[] = [];
    for (const name of names) {
      const file = path.join(roleDir, name);
      const signerFile = name.endsWith(SIGNER_SUFFIX);
      const key = signerFile
        ? openSigner(await readSignerSpec(file))
        : signingKeyFromPem(await fs.readFile(file, 'utf8'));
      if (`${key.keyId}${signerFile ? SIGNER_SUFFIX : PEM_SUFFIX}` !== name)
        throw new FerryError('REPO_INVALID', `${file} holds key ${key.keyId}, not the one its name says`);
      keys.push(key);
    }
    if (keys.length === 0) throw new FerryError('REPO_INVALID', `no ${role} keys in ${roleDir}`);
    return keys;
  }
}
