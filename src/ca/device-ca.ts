import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkDeviceId } from '../device/device-key.js';
import { FerryError, describeCause } from '../errors.js';
import { withFactoryRepo } from '../repo/factory-lock.js';
import { openFactoryRepo, type FactoryRepo } from '../repo/factory-repo.js';
import { pathExists, readSmallFile, writeFileAtomic } from '../util/atomic-file.js';
import {
  certificateCommonName,
  endEntityUsageOf,
  issueCertificate,
  newSerial,
  parseCertificateRequest,
  validityOf,
  type EndEntityUsage,
} from './ed25519-x509.js';

/**
 * The factory's device CA, kept in the factory repository:
 *
 *   <repo>/ca/ca.crt          the self-signed CA certificate: what `ferry reports` trusts device certificates by,
 *                             and what `export --encrypt-to` takes recipient certificates by
 *   <repo>/ca/ca-key.pem      its ed25519 private key (0600); only `device certify` and `ca fleet-key` read it, and
 *                             may read it from elsewhere (--ca-key), so that it can live on the factory line's station
 *   <repo>/ca/issued/<serial>.crt   every certificate issued (a device's two, for its device key and its decryption
 *                             key; a fleet key's), so that a device can be revoked by its id
 *   <repo>/ca/revoked.json    the revocation list: the serials `ferry reports` and `export` no longer trust
 *
 * The revocation list is a plain record of the repository, like the registered keys in devices/: whoever can write
 * the repository can already replace ca.crt, so a signature on the list would protect nothing more, and it would
 * bring the CA key to wherever a device is revoked. Revoking takes effect where reports are read, at once.
 */

const CA_DIR = 'ca';
const FILE_MAX_BYTES = 64 * 1024;
const REVOKED_MAX_BYTES = 16 * 1024 * 1024;

export const DEFAULT_CA_DAYS = 7300;
export const DEFAULT_DEVICE_DAYS = 3650;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CaPaths {
  readonly dir: string;
  readonly certificateFile: string;
  readonly keyFile: string;
  readonly issuedDir: string;
  readonly revokedFile: string;
}

export function caPathsOf(repoDir: string): CaPaths {
  const dir = path.join(repoDir, CA_DIR);
  return {
    dir,
    certificateFile: path.join(dir, 'ca.crt'),
    keyFile: path.join(dir, 'ca-key.pem'),
    issuedDir: path.join(dir, 'issued'),
    revokedFile: path.join(dir, 'revoked.json'),
  };
}

export interface RevokedEntry {
  /** The certificate's serial number as node:crypto prints it: upper-case hex. */
  readonly serial: string;
  readonly device: string;
  readonly at: string;
}

export interface RevocationList {
  readonly version: 1;
  readonly revoked: readonly RevokedEntry[];
}

/** What `ferry reports` needs of the CA: its certificate and the serials it no longer trusts. */
export interface DeviceCaTrust {
  readonly certificate: X509Certificate;
  readonly revokedSerials: ReadonlySet<string>;
}

async function readOptional(file: string, maxBytes = FILE_MAX_BYTES): Promise<Buffer | undefined> {
  try {
    return await readSmallFile(file, maxBytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('REPO_INVALID', `cannot read ${file}: ${describeCause(error)}`, { cause: error });
  }
}

function parseCaCertificate(bytes: Buffer, file: string): X509Certificate {
  try {
    const certificate = new X509Certificate(bytes);
    if (!certificate.ca || certificate.publicKey.asymmetricKeyType !== 'ed25519')
      throw new Error('not an ed25519 CA certificate');
    return certificate;
  } catch (error) {
    throw new FerryError('REPO_INVALID', `the device CA certificate ${file} is broken: ${describeCause(error)}`, {
      cause: error,
    });
  }
}

export interface CaInit {
  readonly certificateFile: string;
  readonly keyFile: string;
  readonly subject: string;
  readonly notAfter: string;
  readonly created: boolean;
}

/**
 * Makes the factory's device CA: an ed25519 key and a self-signed certificate valid for `days`. An existing CA is
 * never replaced: every device certificate chains to it.
 */
export async function initDeviceCa(repoDir: string, days: number, now = new Date()): Promise<CaInit> {
  return withFactoryRepo(repoDir, 'ca init', async (repo) => {
    const paths = caPathsOf(repo.dir);
    const existing = await readOptional(paths.certificateFile);
    if (existing !== undefined) {
      const certificate = parseCaCertificate(existing, paths.certificateFile);
      return {
        certificateFile: paths.certificateFile,
        keyFile: paths.keyFile,
        subject: certificate.subject,
        notAfter: validityOf(certificate).notAfter.toISOString(),
        created: false,
      };
    }
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // The factory's name for people, and the start of the key's sha256 to tell two CAs of one factory apart.
    const keyHash = createHash('sha256')
      .update(publicKey.export({ format: 'der', type: 'spki' }))
      .digest('hex');
    const subject = `ferry device CA (${(await repo.settings()).factory}) ${keyHash.slice(0, 8)}`;
    const notAfter = new Date(now.getTime() + days * DAY_MS);
    const pem = await issueCertificate({
      serial: newSerial(),
      subject,
      publicKey,
      notBefore: now,
      notAfter,
      ca: true,
      signingKey: privateKey,
    });
    await fs.mkdir(paths.issuedDir, { recursive: true });
    // The key first: a certificate without its key could issue nothing.
    await writeFileAtomic(paths.keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
    await writeFileAtomic(paths.certificateFile, pem);
    return {
      certificateFile: paths.certificateFile,
      keyFile: paths.keyFile,
      subject: new X509Certificate(pem).subject,
      notAfter: validityOf(new X509Certificate(pem)).notAfter.toISOString(),
      created: true,
    };
  });
}

export async function requireCaCertificate(repoDir: string): Promise<{ paths: CaPaths; certificate: X509Certificate }> {
  const paths = caPathsOf(repoDir);
  const bytes = await readOptional(paths.certificateFile);
  if (bytes === undefined)
    throw new FerryError(
      'DEVICE_CA_UNAVAILABLE',
      `${repoDir} has no device CA (${paths.certificateFile}): ferry ca init makes one`,
    );
  return { paths, certificate: parseCaCertificate(bytes, paths.certificateFile) };
}

async function loadCaKey(file: string, certificate: X509Certificate): Promise<KeyObject> {
  let key: KeyObject;
  try {
    key = createPrivateKey(await readSmallFile(file, FILE_MAX_BYTES));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FerryError('DEVICE_CA_UNAVAILABLE', `the device CA key ${file} is not there (give it with --ca-key)`);
    throw new FerryError(
      'DEVICE_CERTIFICATE_INVALID',
      `cannot read the device CA key ${file}: ${describeCause(error)}`,
      {
        cause: error,
      },
    );
  }
  const publicDer = createPublicKey(key).export({ format: 'der', type: 'spki' });
  if (!publicDer.equals(certificate.publicKey.export({ format: 'der', type: 'spki' })))
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', `${file} is not the key of the device CA certificate`);
  return key;
}

/** A certificate the CA issued, as recorded under issued/. */
export interface IssuedCertificate {
  /** Its subject's common name: a device id, or `fleet:<name>` for a fleet key. */
  readonly subject: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** What the certified key is for: signing reports (an ed25519 device key) or key agreement (a P-256 key). */
  readonly keyUsage: EndEntityUsage;
  readonly certificate: string;
  /** Where the repository keeps it: `<repo>/ca/issued/<serial>.crt`. */
  readonly issuedFile: string;
}

export interface IssueUnderCaOptions {
  readonly days: number;
  readonly caKeyFile?: string | undefined;
  readonly now?: Date | undefined;
}

/**
 * Issues an end entity's certificate signed by the repository's device CA, valid for `days` (never past the CA's
 * own end), and records it under issued/. The caller holds the repository's lock.
 */
export async function issueUnderCa(
  repo: FactoryRepo,
  subject: { readonly commonName: string; readonly publicKey: KeyObject },
  options: IssueUnderCaOptions,
): Promise<IssuedCertificate> {
  const { paths, certificate: caCertificate } = await requireCaCertificate(repo.dir);
  const caKey = await loadCaKey(options.caKeyFile ?? paths.keyFile, caCertificate);
  const now = options.now ?? new Date();
  const caValidity = validityOf(caCertificate);
  if (now < caValidity.notBefore || now > caValidity.notAfter)
    throw new FerryError(
      'DEVICE_CA_UNAVAILABLE',
      `the device CA certificate ${paths.certificateFile} is not valid now (${caValidity.notBefore.toISOString()} to ${caValidity.notAfter.toISOString()})`,
    );
  const pem = await issueCertificate({
    serial: newSerial(),
    subject: subject.commonName,
    publicKey: subject.publicKey,
    notBefore: now,
    // A certificate ends with its CA at the latest: no reader would trust it longer.
    notAfter: new Date(Math.min(now.getTime() + options.days * DAY_MS, caValidity.notAfter.getTime())),
    ca: false,
    issuer: { certificate: caCertificate, commonName: certificateCommonName(caCertificate) ?? '' },
    signingKey: caKey,
  });
  const issued = new X509Certificate(pem);
  const issuedFile = path.join(paths.issuedDir, `${issued.serialNumber}.crt`);
  await fs.mkdir(paths.issuedDir, { recursive: true });
  await writeFileAtomic(issuedFile, pem);
  const { notBefore, notAfter } = validityOf(issued);
  return {
    subject: subject.commonName,
    serial: issued.serialNumber,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    keyUsage: endEntityUsageOf(subject.publicKey),
    certificate: pem,
    issuedFile,
  };
}

export interface Certification extends Omit<IssuedCertificate, 'subject'> {
  readonly device: string;
}

/**
 * The factory line's station: checks a device's request (its own key signed it; its name is a device id) and issues
 * the certificate for `days`, recorded under issued/: for an ed25519 request the device certificate its reports
 * carry, for a P-256 request (the device's decryption key) one that encrypted bundles can be addressed to.
 */
export async function certifyDevice(
  repoDir: string,
  request: Uint8Array,
  options: IssueUnderCaOptions,
): Promise<Certification> {
  let parsed: Awaited<ReturnType<typeof parseCertificateRequest>>;
  try {
    parsed = await parseCertificateRequest(request);
  } catch (error) {
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', `the certificate request is refused: ${describeCause(error)}`, {
      cause: error,
    });
  }
  try {
    checkDeviceId(parsed.commonName, 'the requested common name');
  } catch (error) {
    throw new FerryError('DEVICE_CERTIFICATE_INVALID', describeCause(error), { cause: error });
  }
  return withFactoryRepo(repoDir, 'device certify', async (repo) => {
    const { subject, ...issued } = await issueUnderCa(repo, parsed, options);
    return { device: subject, ...issued };
  });
}

async function readRevocationList(file: string): Promise<RevocationList> {
  const bytes = await readOptional(file, REVOKED_MAX_BYTES);
  if (bytes === undefined) return { version: 1, revoked: [] };
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as Partial<RevocationList>;
    if (
      parsed.version !== 1 ||
      !Array.isArray(parsed.revoked) ||
      !parsed.revoked.every(
        (entry: Partial<RevokedEntry>) =>
          typeof entry.serial === 'string' &&
          /^[0-9A-F]+$/.test(entry.serial) &&
          typeof entry.device === 'string' &&
          typeof entry.at === 'string',
      )
    )
      throw new Error('not a revocation list');
    return parsed as RevocationList;
  } catch (error) {
    // A list that cannot be read revokes nothing it could name: refusing to read any report is the safe answer.
    throw new FerryError('REPO_INVALID', `the revocation list ${file} is broken: ${describeCause(error)}`, {
      cause: error,
    });
  }
}

/** The certificates issued for a device id, or the one with that serial: what `device revoke` may name. */
async function issuedMatching(paths: CaPaths, idOrSerial: string): Promise<RevokedEntry[]> {
  let names: string[];
  try {
    names = (await fs.readdir(paths.issuedDir)).filter((name) => /^[0-9A-F]+\.crt$/.test(name)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    names = [];
  }
  const wanted = idOrSerial.toUpperCase();
  const found: RevokedEntry[] = [];
  for (const name of names) {
    const serial = name.slice(0, -'.crt'.length);
    const bytes = await readOptional(path.join(paths.issuedDir, name));
    if (bytes === undefined) continue;
    let device: string | undefined;
    try {
      device = certificateCommonName(new X509Certificate(bytes));
    } catch {
      device = undefined;
    }
    if (device === undefined) continue;
    if (serial === wanted || device === idOrSerial) found.push({ serial, device, at: '' });
  }
  return found;
}

export interface Revocation {
  readonly revoked: readonly RevokedEntry[];
  /** Those that were on the list already. */
  readonly already: readonly string[];
  readonly file: string;
}

/** Adds every certificate issued for a device id (or the one with a serial) to the revocation list. */
export async function revokeDevice(repoDir: string, idOrSerial: string, now = new Date()): Promise<Revocation> {
  return withFactoryRepo(repoDir, 'device revoke', async (repo) => {
    const { paths } = await requireCaCertificate(repo.dir);
    const matches = await issuedMatching(paths, idOrSerial);
    if (matches.length === 0)
      throw new FerryError(
        'DEVICE_CA_UNAVAILABLE',
        `the device CA of ${repo.dir} issued no certificate with serial or device id "${idOrSerial}" (${paths.issuedDir})`,
      );
    const list = await readRevocationList(paths.revokedFile);
    const listed = new Set(list.revoked.map((entry) => entry.serial));
    const added = matches
      .filter((entry) => !listed.has(entry.serial))
      .map((entry) => ({ ...entry, at: now.toISOString() }));
    if (added.length > 0) {
      const next: RevocationList = { version: 1, revoked: [...list.revoked, ...added] };
      await writeFileAtomic(paths.revokedFile, `${JSON.stringify(next, null, 2)}\n`);
    }
    return {
      revoked: added,
      already: matches.filter((entry) => listed.has(entry.serial)).map((entry) => entry.serial),
      file: paths.revokedFile,
    };
  });
}

/** The CA `ferry reports` trusts certificates by, or null when the repository has none. */
export async function loadDeviceCaTrust(repoDir: string): Promise<DeviceCaTrust | null> {
  const repo = await openFactoryRepo(repoDir);
  const paths = caPathsOf(repo.dir);
  if (!(await pathExists(paths.certificateFile))) return null;
  const { certificate } = await requireCaCertificate(repo.dir);
  const list = await readRevocationList(paths.revokedFile);
  return { certificate, revokedSerials: new Set(list.revoked.map((entry) => entry.serial)) };
}
