import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { runTool } from '../util/tool.js';
import { ArchiveFileObjectHasher } from './archive-object.js';

export const COMMIT_CHECKSUM = /^[0-9a-f]{64}$/;

/** A thin adapter over the `ostree` CLI for one repository. */
export class OstreeRepo {
  constructor(readonly path: string) {}

  private run(args: readonly string[]): Promise<string> {
    return runTool('ostree', [`--repo=${this.path}`, ...args]);
  }

  static async create(repoPath: string, mode: 'archive' | 'bare' | 'bare-user'): Promise<OstreeRepo> {
    await fs.mkdir(repoPath, { recursive: true });
    await runTool('ostree', [`--repo=${repoPath}`, 'init', `--mode=${mode}`]);
    return new OstreeRepo(repoPath);
  }

  /** True when the commit object itself is present. Its tree may still be incomplete: pull --untrusted finds that. */
  async hasCommitObject(commit: string): Promise<boolean> {
    if (!COMMIT_CHECKSUM.test(commit)) return false;
    try {
      const stat = await fs.stat(path.join(this.path, 'objects', commit.slice(0, 2), `${commit.slice(2)}.commit`));
      return stat.isFile();
    } catch {
      return false;
    }
  }

  async resolve(refOrCommit: string): Promise<string> {
    return (await this.run(['rev-parse', refOrCommit])).trim();
  }

  /**
   * Copies `refOrCommit` and everything it reaches from `source`. With `untrusted`, ostree re-checksums every object,
   * which is what media from a USB stick deserves.
   */
  /**
   * `disableFsync` is for a repo that is flushed whole once everything is written (a bundle on its media): ostree's
   * per-transaction syncing then costs time and buys nothing.
   */
  async pullLocal(
    source: string,
    refOrCommit: string,
    options: { untrusted: boolean; disableFsync?: boolean },
  ): Promise<void> {
    const args = ['pull-local'];
    if (options.untrusted) args.push('--untrusted');
    if (options.disableFsync === true) args.push('--disable-fsync');
    // A failed pull leaves a staging directory and a commitpartial marker behind for a later resume. A refused
    // bundle must leave the repo as it was, so whatever this pull added there goes again.
    const before = await this.scratchEntries();
    try {
      await this.run([...args, source, refOrCommit]);
    } catch (error) {
      for (const entry of await this.scratchEntries())
        if (!before.has(entry)) await fs.rm(path.join(this.path, entry), { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * The content object of every regular file a commit reaches, with its size in bytes (uncompressed): what a pull
   * of the commit writes, object by object. Symlinks (no content) and metadata objects are left out.
   */
  async fileObjectSizes(commit: string): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for (const line of (await this.run(['ls', '-R', '--checksum', commit])).split('\n')) {
      // -00644 0 0   1234 <checksum> /path
      const match = /^-\S*\s+\d+\s+\d+\s+(\d+)\s+([0-9a-f]{64})\s/.exec(line);
      if (match !== null) sizes.set(match[2]!, Number(match[1]));
    }
    return sizes;
  }

  /**
   * The checksums of the file objects this repo holds whose first two hex digits are one of `prefixes`, committed or
   * still in the staging directory of a pull under way (ostree names an object only once it is written whole).
   */
  async fileObjectsUnder(prefixes: Iterable<string>): Promise<string[]> {
    const tmp = path.join(this.path, 'tmp');
    const roots = [
      path.join(this.path, 'objects'),
      ...(await fs.readdir(tmp, { withFileTypes: true }).catch(() => []))
        .filter((entry) => entry.isDirectory() && entry.name.startsWith('staging-'))
        .map((entry) => path.join(tmp, entry.name)),
    ];
    const checksums: string[] = [];
    for (const prefix of prefixes) {
      for (const root of roots) {
        for (const name of await fs.readdir(path.join(root, prefix)).catch(() => [] as string[])) {
          // archive repos store file objects as .filez, bare ones as .file
          const rest = /^([0-9a-f]{62})\.filez?$/.exec(name)?.[1];
          if (rest !== undefined) checksums.push(`${prefix}${rest}`);
        }
      }
    }
    return checksums;
  }

  /**
   * Writes one self-contained static delta file to `commit`, from `from` or from nothing: every part inlined
   * (--inline) and no object left out as a fallback to fetch separately (--min-fallback-size=0). The commit's
   * detached metadata travels in it too.
   */
  async generateStaticDelta(options: { to: string; from?: string | undefined; file: string }): Promise<void> {
    await this.run([
      'static-delta',
      'generate',
      '--inline',
      '--min-fallback-size=0',
      options.from === undefined ? '--empty' : `--from=${options.from}`,
      `--to=${options.to}`,
      `--filename=${options.file}`,
    ]);
  }

  /**
   * Applies a static delta file. ostree (2022.7) writes every object untrusted: each is checked against its checksum
   * as it is written, and a delta whose base commit the repo lacks is refused. A failure leaves the repo as it was,
   * apart from objects no ref or deployment reaches.
   */
  async applyStaticDelta(file: string): Promise<void> {
    const before = await this.scratchEntries();
    try {
      await this.run(['static-delta', 'apply-offline', file]);
    } catch (error) {
      for (const entry of await this.scratchEntries())
        if (!before.has(entry)) await fs.rm(path.join(this.path, entry), { recursive: true, force: true });
      throw error;
    }
  }

  private async scratchEntries(): Promise<Set<string>> {
    const entries = new Set<string>();
    for (const dir of ['tmp', 'state']) {
      for (const name of await fs.readdir(path.join(this.path, dir)).catch(() => [] as string[]))
        entries.add(path.join(dir, name));
    }
    return entries;
  }

  async fsck(): Promise<void> {
    await this.run(['fsck', '--quiet']);
  }

  async setRef(ref: string, commit: string): Promise<void> {
    await this.run(['refs', '--create', ref, commit, '--force']);
  }

  async commitTree(options: { tree: string; branch: string; subject: string }): Promise<string> {
    const out = await this.run([
      'commit',
      `--branch=${options.branch}`,
      `--tree=dir=${options.tree}`,
      `--subject=${options.subject}`,
    ]);
    return out.trim();
  }

  async readMode(): Promise<string | undefined> {
    try {
      const config = await fs.readFile(path.join(this.path, 'config'), 'utf8');
      return /^\s*mode\s*=\s*(\S+)/m.exec(config)?.[1];
    } catch {
      return undefined;
    }
  }
}

/**
 * Checks every object an archive-mode repo holds against the checksum its name is: metadata objects by their bytes,
 * file objects (`.filez`) by their header and uncompressed content. For a delta bundle, whose commits are
 * incomplete on purpose, this is what `ostree fsck` cannot do; the device's untrusted pull checks the rest.
 */
export async function verifyArchiveObjects(repoPath: string): Promise<{ objects: number; bytes: number }> {
  const objectsDir = path.join(repoPath, 'objects');
  let objects = 0;
  let bytes = 0;
  for (const prefix of await fs.readdir(objectsDir)) {
    for (const name of await fs.readdir(path.join(objectsDir, prefix))) {
      const match = /^([0-9a-f]{62})\.(filez|dirtree|dirmeta|commit|commitmeta)$/.exec(name);
      if (prefix.length !== 2 || match === null) throw new Error(`objects/${prefix}/${name} is not an object name`);
      const expected = `${prefix}${match[1]}`;
      const file = path.join(objectsDir, prefix, name);
      let actual: string | Error;
      if (match[2] === 'filez') {
        const hasher = new ArchiveFileObjectHasher();
        for await (const chunk of createReadStream(file)) await hasher.update(chunk as Buffer);
        actual = await hasher.digest();
      } else if (match[2] === 'commitmeta') {
        // Detached metadata is named after its commit, not hashed: nothing to check by name.
        actual = expected;
      } else {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
        actual = hash.digest('hex');
      }
      if (actual instanceof Error) throw new Error(`objects/${prefix}/${name}: ${actual.message}`);
      if (actual !== expected) throw new Error(`objects/${prefix}/${name} hashes to ${actual}`);
      objects += 1;
      bytes += (await fs.stat(file)).size;
    }
  }
  return { objects, bytes };
}
