import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AppPin } from '../../tuf/target.js';
import { pathExists, syncDirectory } from '../../util/atomic-file.js';
import { AppsDir } from '../format/apps-dir.js';
import { copyVerifiedApps } from '../format/copy-apps.js';
import { hexOf, type Descriptor } from '../format/digest.js';
import type { VerifiedApp } from '../format/verify-apps.js';

export interface StagedApps {
  readonly blobsCopied: number;
  readonly bytesCopied: number;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

/**
 * The device's app store, content-addressed like aktualizr-lite's reset-apps: `<storage>/ferry/apps`, in the same
 * layout as a bundle's apps/. Versions stay side by side, so the previous target's apps are there for a rollback.
 * Staging is all or nothing: everything is written under `.staging-*` first and moved into place only when every
 * blob has been copied and verified.
 */
export class AppStore {
  readonly apps: AppsDir;

  constructor(readonly root: string) {
    this.apps = new AppsDir(root);
  }

  async hasApp(name: string, pin: AppPin): Promise<boolean> {
    return pathExists(path.join(this.apps.projectDir(name, pin.digest), '.complete'));
  }

  /** The blobs (and their sizes) that staging `apps` would have to write. */
  async missingBlobs(apps: readonly VerifiedApp[]): Promise<Descriptor[]> {
    const missing = new Map<string, Descriptor>();
    for (const app of apps) {
      for (const image of app.images) {
        for (const blob of image.blobs)
          if (!missing.has(blob.digest) && !(await this.apps.blobs.has(blob.digest))) missing.set(blob.digest, blob);
      }
    }
    return [...missing.values()];
  }

  /**
   * Copies (and verifies) the apps the store lacks into a staging directory beside the store. Nothing is in the
   * store until commit(); discard() leaves the device as it was.
   */
  async prepare(
    source: AppsDir,
    apps: readonly VerifiedApp[],
    onProgress?: (bytesCopied: number) => Promise<void>,
  ): Promise<StagedApps> {
    const todo: VerifiedApp[] = [];
    for (const app of apps) if (!(await this.hasApp(app.name, app.pin))) todo.push(app);
    const nothing = { blobsCopied: 0, bytesCopied: 0 };
    if (todo.length === 0) return { ...nothing, commit: async () => undefined, discard: async () => undefined };
    // Beside the store, on the same filesystem, so that commit() is a rename; gone again after discard().
    const staging = new AppsDir(
      path.join(path.dirname(this.root), `.apps-staging-${process.pid}-${randomBytes(4).toString('hex')}`),
    );
    const discard = () => fs.rm(staging.root, { recursive: true, force: true });
    try {
      const result = await copyVerifiedApps(source, staging, todo, {
        unpackProject: true,
        skipBlob: (digest) => this.apps.blobs.has(digest),
        ...(onProgress ? { onProgress } : {}),
      });
      for (const app of todo)
        await fs.writeFile(path.join(staging.projectDir(app.name, app.pin.digest), '.complete'), '');
      return {
        ...result,
        commit: async () => {
          await this.promote(staging, todo);
          await discard();
        },
        discard,
      };
    } catch (error) {
      await discard();
      throw error;
    }
  }

  /** prepare() and commit() in one step. */
  async stage(source: AppsDir, apps: readonly VerifiedApp[]): Promise<{ blobsCopied: number; bytesCopied: number }> {
    const staged = await this.prepare(source, apps);
    await staged.commit();
    return staged;
  }

  /** Moves staged blobs and app directories into the store, blobs first, so an app in place never lacks a blob. */
  private async promote(staging: AppsDir, apps: readonly VerifiedApp[]): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    const stagedBlobs = path.join(staging.blobs.dir, 'sha256');
    const blobDir = path.join(this.apps.blobs.dir, 'sha256');
    await fs.mkdir(blobDir, { recursive: true });
    for (const name of await fs.readdir(stagedBlobs).catch(() => [] as string[])) {
      await fs.rename(path.join(stagedBlobs, name), path.join(blobDir, name));
    }
    await syncDirectory(blobDir);
    for (const app of apps) {
      const final = this.apps.appDir(app.name, app.pin.digest);
      await fs.mkdir(path.dirname(final), { recursive: true });
      // A half-written version from an interrupted run has no .complete marker: replace it.
      await fs.rm(final, { recursive: true, force: true });
      await fs.rename(staging.appDir(app.name, app.pin.digest), final);
      await syncDirectory(path.dirname(final));
    }
  }

  /**
   * A version leaves the store by one rename into the trash, and is deleted from there: a power cut in the middle of
   * the delete never leaves a half-deleted version (that still has its .complete marker) in place.
   */
  private async removeVersion(name: string, version: string): Promise<void> {
    const trash = path.join(this.root, `.trash-${randomBytes(6).toString('hex')}`);
    await fs.rename(path.join(this.root, name, version), trash);
    await syncDirectory(path.join(this.root, name));
    await fs.rm(trash, { recursive: true, force: true });
  }

  /** Removes app versions (and then blobs) that none of the `keep` targets use. */
  async prune(keep: ReadonlyArray<Readonly<Record<string, AppPin>>>): Promise<void> {
    const wanted = new Set(
      keep.flatMap((apps) => Object.entries(apps).map(([name, pin]) => `${name}/${hexOf(pin.digest)}`)),
    );
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch {
      return;
    }
    const usedBlobs = new Set<string>();
    for (const name of names) {
      // The trash of a prune a power cut interrupted.
      if (name.startsWith('.trash-')) await fs.rm(path.join(this.root, name), { recursive: true, force: true });
      if (name === 'blobs' || name.startsWith('.')) continue;
      for (const version of await fs.readdir(path.join(this.root, name))) {
        if (!wanted.has(`${name}/${version}`)) {
          await this.removeVersion(name, version);
          continue;
        }
        const images = path.join(this.root, name, version, 'images');
        for (const index of await findFiles(images, 'index.json')) {
          const parsed = JSON.parse(await fs.readFile(index, 'utf8')) as { manifests: Array<{ digest: string }> };
          for (const entry of parsed.manifests) {
            usedBlobs.add(hexOf(entry.digest));
            const manifest = JSON.parse(await fs.readFile(this.apps.blobs.pathOf(entry.digest), 'utf8')) as {
              config: Descriptor;
              layers: Descriptor[];
            };
            for (const blob of [manifest.config, ...manifest.layers]) usedBlobs.add(hexOf(blob.digest));
          }
        }
      }
    }
    const blobDir = path.join(this.apps.blobs.dir, 'sha256');
    for (const hex of await fs.readdir(blobDir).catch(() => [] as string[])) {
      if (!usedBlobs.has(hex)) await fs.rm(path.join(blobDir, hex), { force: true });
    }
  }
}

async function findFiles(dir: string, name: string): Promise<string[]> {
  const found: string[] = [];
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await findFiles(full, name)));
    else if (entry.name === name) found.push(full);
  }
  return found;
}
