import path from 'node:path';
import type { Command } from 'commander';
import { FerryError } from '../errors.js';
import type { Outcome } from '../exit-codes.js';
import { commandPath } from './command-context.js';
import { unusablePath, type PathProblem, type PathUse } from '../util/usable-path.js';

/**
 * What each command does with the paths it is given: the entry point checks them all before the command runs
 * (src/util/usable-path.ts), so a missing, mistyped, read-only or special path gets one line and its own code.
 */
export interface PathInput {
  readonly use: PathUse;
  /**
   * The code of the command's own world for a path of the wrong type or special (a repository answers 40, a bundle
   * 13, a device configuration 3), so that scripts keep the codes they already handle; the command itself refuses
   * such a path when it is missing. A path the command must write and cannot is always PATH_NOT_WRITABLE.
   */
  readonly unusable?: Outcome;
}

type Options = Record<string, unknown>;

/** Keyed by the command (`bundle sign`), then by the argument's name or the option's attribute name. */
export const PATH_INPUTS: Readonly<
  Record<string, Readonly<Record<string, PathInput | ((options: Options) => PathInput)>>>
> = {
  install: { srcDir: bundle(), config: deviceConfig() },
  run: { config: deviceConfig() },
  status: { config: deviceConfig() },
  check: { srcDir: bundle(), config: deviceConfig() },
  current: { config: deviceConfig() },
  'repo init': { dir: { use: { creates: 'dir' } } },
  'target add': { repo: factoryRepo(), ostreeRepo: { use: { reads: 'dir' } } },
  'app add': { repo: factoryRepo(), compose: { use: { reads: 'dir' } }, image: { use: { reads: 'dir-or-file' } } },
  export: {
    repo: factoryRepo(),
    // A new bundle, or one more target in the bundle there (a missing directory then starts one); --tuf-only needs
    // the bundle it refreshes.
    dst: (options) =>
      options['archive']
        ? { use: { creates: 'file' } }
        : options['tufOnly']
          ? { use: { reads: 'dir', writesInPlace: true }, unusable: 'BUNDLE_UNREADABLE' }
          : { use: { creates: 'dir' } },
    encryptTo: certificateFile(),
  },
  show: { bundle: bundle() },
  verify: {
    bundle: bundle(),
    trustedRoot: { use: { reads: 'file' } },
    decryptionKey: { use: { reads: 'file' }, unusable: 'DEVICE_KEY_INVALID' },
  },
  'bundle sign': { bundle: { use: { reads: 'dir', writesInPlace: true }, unusable: 'BUNDLE_UNREADABLE' }, key: file() },
  'bundle pack': { dir: { use: { reads: 'dir' }, unusable: 'BUNDLE_UNREADABLE' }, file: { use: { creates: 'file' } } },
  'keys rotate': { repo: factoryRepo(), signer: file() },
  'keys add-offline': { repo: factoryRepo(), out: { use: { creates: 'dir' } }, signer: file() },
  'sim create': { 'device-dir': { use: { creates: 'dir' } }, repo: factoryRepo() },
  'sim reboot': { 'device-dir': { use: { reads: 'dir', writesInPlace: true } } },
  'sim rootfs': { ostreeRepo: { use: { creates: 'dir' } } },
  'sim image': { out: { use: { creates: 'dir' } } },
  'device provision': {
    config: deviceConfig(),
    certificate: certificateFile(),
    fleetKey: { use: { reads: 'file' }, unusable: 'DEVICE_KEY_INVALID' },
  },
  'ca init': { repo: factoryRepo() },
  'ca fleet-key': { repo: factoryRepo(), out: { use: { creates: 'dir' } }, caKey: certificateFile() },
  'device certify': {
    repo: factoryRepo(),
    'csr-file': certificateFile(),
    caKey: certificateFile(),
    out: { use: { creates: 'file' } },
  },
  'device revoke': { repo: factoryRepo() },
  'device register': { repo: factoryRepo(), key: { use: { reads: 'file' }, unusable: 'DEVICE_KEY_INVALID' } },
  reports: {
    media: { use: { reads: 'dir' }, unusable: 'REPORTS_UNREADABLE' },
    repo: { use: { reads: 'dir' }, unusable: 'REPO_INVALID' },
  },
};

function factoryRepo(): PathInput {
  return { use: { reads: 'dir', writesInPlace: true }, unusable: 'REPO_INVALID' };
}
function bundle(): PathInput {
  return { use: { reads: 'dir-or-file' }, unusable: 'BUNDLE_UNREADABLE' };
}
function deviceConfig(): PathInput {
  return { use: { reads: 'dir-or-file' }, unusable: 'CONFIG_INVALID' };
}
/** A certificate, a request or the CA key: a file that is not one is the certificate code's refusal. */
function certificateFile(): PathInput {
  return { use: { reads: 'file' }, unusable: 'DEVICE_CERTIFICATE_INVALID' };
}
function file(): PathInput {
  return { use: { reads: 'file' } };
}

const PROBLEM_OUTCOMES: Readonly<Record<PathProblem, Outcome>> = {
  missing: 'PATH_MISSING',
  'wrong-type': 'PATH_WRONG_TYPE',
  'not-writable': 'PATH_NOT_WRITABLE',
  special: 'PATH_SPECIAL',
};

/** The named inputs of a command as it was called: its arguments, then its options, each path value once. */
function givenValues(command: Command): [name: string, value: unknown][] {
  return [
    ...command.registeredArguments.map((argument, index): [string, unknown] => [
      argument.name(),
      command.processedArgs[index],
    ]),
    ...Object.entries(command.opts()),
  ];
}

/** Throws the FerryError of the first path given to `command` that cannot serve what the command does with it. */
export async function checkPathInputs(command: Command): Promise<void> {
  const inputs = PATH_INPUTS[commandPath(command)] ?? {};
  const options = command.opts();
  for (const [name, value] of givenValues(command)) {
    const declared = inputs[name];
    if (declared === undefined || value === undefined) continue;
    const input = typeof declared === 'function' ? declared(options) : declared;
    for (const given of Array.isArray(value) ? value : [value]) {
      if (typeof given !== 'string') continue;
      const unusable = await unusablePath(path.resolve(given), input.use);
      // A missing repository, bundle or configuration is the command's own refusal, in its own words.
      if (unusable === undefined || (unusable.problem === 'missing' && input.unusable !== undefined)) continue;
      const outcome =
        unusable.problem !== 'not-writable' && input.unusable !== undefined
          ? input.unusable
          : PROBLEM_OUTCOMES[unusable.problem];
      throw new FerryError(outcome, unusable.reason);
    }
  }
}
