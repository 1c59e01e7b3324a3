/**
 * Deterministic bench data: the same bytes on every run and every machine, so that two runs measure the same work.
 * Content comes from AES-128-CTR keyed by a seed (fast, incompressible); "text" files map it onto 16 letters, which
 * compresses about as well as the text and scripts of a real rootfs.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** `size` bytes that depend only on `seed`. */
export function deterministicBytes(seed: string, size: number, kind: 'binary' | 'text' = 'binary'): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const bytes = cipher.update(Buffer.alloc(size));
  if (kind === 'text')
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 64 === 63 ? 0x0a : 0x61 + (bytes[i]! & 0x0f);
  return bytes;
}

/** A small PRNG (mulberry32): the file sizes of a tree, the same for the same seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TreeSpec {
  readonly files: number;
  readonly bytes: number;
  /** The top directory under the tree root, e.g. `usr/share/bench`. */
  readonly under: string;
  readonly seed: string;
  /** Share of the files that are small text files; the rest are binaries of about 20 times the size. */
  readonly textShare?: number;
}

/**
 * Writes `spec.files` files of `spec.bytes` in all under `root/spec.under`, 500 to a directory: many small text files
 * and fewer, larger binaries (about two thirds of the bytes), as in a real rootfs.
 */
export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  const next = random(Number.parseInt(createHash('sha256').update(spec.seed).digest('hex').slice(0, 8), 16));
  const textShare = spec.textShare ?? 0.9;
  const weights: Array<{ weight: number; text: boolean }> = [];
  for (let i = 0; i < spec.files; i++) {
    const text = next() < textShare;
    weights.push({ text, weight: text ? 0.2 + 1.6 * next() : 5 + 26 * next() });
  }
  const scale = spec.bytes / weights.reduce((sum, item) => sum + item.weight, 0);
  let written = 0;
  for (const [i, item] of weights.entries()) {
    const size = i === weights.length - 1 ? Math.max(0, spec.bytes - written) : Math.floor(item.weight * scale);
    written += size;
    const dir = path.join(root, spec.under, `d${String(Math.floor(i / 500)).padStart(3, '0')}`);
    if (i % 500 === 0) await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(
      path.join(dir, `${item.text ? 't' : 'b'}${String(i).padStart(6, '0')}`),
      deterministicBytes(`${spec.seed}/${i}`, size, item.text ? 'text' : 'binary'),
    );
  }
}

export interface RebuildSpec {
  /** The directory (under the tree root) whose binaries are rebuilt, e.g. `usr/share/bench`. */
  readonly under: string;
  /** How many binaries change. */
  readonly files: number;
  readonly seed: string;
}

const PAGE = 4096;

/**
 * A package upgrade that rebuilds libraries: `spec.files` of the binaries that `writeTree` wrote under `spec.under`
 * (picked by a seeded PRNG from their sorted paths) keep their size and change one byte in every 4 KiB page, as a
 * relinked binary does (shifted addresses, a new build id). Each changed file is written beside and renamed over the
 * old one: the old file may share its inode with something else (a hardlinked checkout), which must stay as it was.
 * Returns the changed files' paths (relative to `root`) and their bytes.
 */
export async function rebuildBinaries(root: string, spec: RebuildSpec): Promise<{ files: string[]; bytes: number }> {
  const binaries: string[] = [];
  for (const dir of (await fs.readdir(path.join(root, spec.under))).sort())
    for (const name of (await fs.readdir(path.join(root, spec.under, dir))).sort())
      if (name.startsWith('b')) binaries.push(path.join(spec.under, dir, name));
  const next = random(Number.parseInt(createHash('sha256').update(spec.seed).digest('hex').slice(0, 8), 16));
  // A partial Fisher-Yates shuffle: the first `spec.files` entries are the pick, each binary at most once.
  const count = Math.min(spec.files, binaries.length);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(next() * (binaries.length - i));
    [binaries[i], binaries[j]] = [binaries[j]!, binaries[i]!];
  }
  const picked = binaries.slice(0, count).sort();
  let bytes = 0;
  for (const file of picked) {
    const full = path.join(root, file);
    const content = await fs.readFile(full);
    for (let page = 0; page < content.length; page += PAGE) {
      const at = page + Math.floor(next() * Math.min(PAGE, content.length - page));
      // XOR with 1..255: the byte always changes.
      content[at] = content[at]! ^ (1 + Math.floor(next() * 255));
    }
    const partial = `${full}.rebuilt`;
    await fs.writeFile(partial, content);
    await fs.rename(partial, full);
    bytes += content.length;
  }
  return { files: picked, bytes };
}
