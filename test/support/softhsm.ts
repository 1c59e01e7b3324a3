import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempDir } from './factory.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const TOKEN_PIN = '1234';
/** The variable the signer.json files below name as their pin-source. */
export const PIN_VARIABLE = 'FERRY_TEST_PKCS11_PIN';

export interface SoftHsmToken {
  readonly label: string;
  /** Its own token directory: the keys ferry makes there never touch the factory. */
  readonly tokenDir: string;
  /** Writes a signer.json for the key `keyLabel` in this token, and returns its path. */
  signerFile(keyLabel: string, overrides?: Record<string, unknown>): Promise<string>;
}

/**
 * A real SoftHSM2 token in a directory of its own, reached through SOFTHSM2_CONF (which ferry's pkcs11-tool calls
 * inherit). Throws when softhsm2-util cannot make it: a test needing a token fails, it does not skip.
 */
export async function startSoftHsm(label = 'ferry-test'): Promise<SoftHsmToken> {
  const dir = await tempDir('softhsm');
  const tokenDir = path.join(dir, 'tokens');
  await fs.mkdir(tokenDir);
  const conf = path.join(dir, 'softhsm2.conf');
  await fs.writeFile(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env['SOFTHSM2_CONF'] = conf;
  process.env[PIN_VARIABLE] = TOKEN_PIN;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', '0000', '--pin', TOKEN_PIN], {
    stdio: 'pipe',
  });
  return {
    label,
    tokenDir,
    signerFile: async (keyLabel, overrides = {}) => {
      const file = path.join(dir, `${keyLabel}.signer.json`);
      await fs.writeFile(
        file,
        JSON.stringify({
          kind: 'pkcs11',
          module: SOFTHSM_MODULE,
          token: label,
          label: keyLabel,
          'pin-source': `env:${PIN_VARIABLE}`,
          ...overrides,
        }),
      );
      return file;
    },
  };
}
