import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkDeviceId } from '../device/device-key.js';
import { FerryError, describeCause } from '../errors.js';
import { withFactoryRepo } from '../repo/factory-lock.js';
import { pathExists, syncDirectory } from '../util/atomic-file.js';
import { issueUnderCa, type IssuedCertificate, type IssueUnderCaOptions } from './device-ca.js';

/**
 * A fleet key: one P-256 key given to many devices (`device provision --fleet-key`), so that a bundle can be
 * encrypted to a whole fleet with one certificate instead of one per device. Its certificate is the CA's, like a
 * device's decryption certificate, with the subject `fleet:<name>`: a name no device id can take (":" is not allowed
 * in one), so that it is never mistaken for a device's and `device revoke fleet:<name>` revokes it alone.
 */

export const FLEET_SUBJECT_PREFIX = 'fleet:';

export interface FleetKey extends IssuedCertificate {
  readonly name: string;
  /** `<out>/<name>.pem`: the private key (PKCS#8, 0600), for the devices of the fleet. */
  readonly keyFile: string;
  /** `<out>/<name>.crt`: its certificate, for `export --encrypt-to`. */
  readonly certificateFile: string;
}

/** Writes a file that must not exist yet (never over another), and makes it durable. */
async function writeNewFile(file: string, data: string, mode: number): Promise<void> {
  const handle = await fs.open(file, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Makes the fleet key `name` and its certificate, signed by the repository's device CA and recorded under issued/,
 * and writes both to `outDir`. Refuses (nothing written) a name that is not a plain file name, and a key or
 * certificate already there: a fleet key that was handed out must not be lost to a second run.
 */
export async function makeFleetKey(
  repoDir: string,
  name: string,
  outDir: string,
  options: IssueUnderCaOptions,
): Promise<FleetKey> {
  checkDeviceId(name, 'the fleet key name');
  const keyFile = path.join(outDir, `${name}.pem`);
  const certificateFile = path.join(outDir, `${name}.crt`);
  return withFactoryRepo(repoDir, 'ca fleet-key', async (repo) => {
    for (const file of [keyFile, certificateFile])
      if (await pathExists(file))
        throw new FerryError(
          'DESTINATION_NOT_EMPTY',
          `${file} already exists; a fleet key is never replaced (choose another name or --out)`,
        );
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = await issueUnderCa(repo, { commonName: `${FLEET_SUBJECT_PREFIX}${name}`, publicKey }, options);
    try {
      await fs.mkdir(outDir, { recursive: true, mode: 0o700 });
      await writeNewFile(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
      await writeNewFile(certificateFile, issued.certificate, 0o644);
      await syncDirectory(outDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new FerryError('DESTINATION_NOT_EMPTY', `${describeCause(error)}: another command wrote it meanwhile`, {
          cause: error,
        });
      throw error;
    }
    return { ...issued, name, keyFile, certificateFile };
  });
}
