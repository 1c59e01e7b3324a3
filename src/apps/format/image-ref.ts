/**
 * Docker image references, as far as ferry needs them: `[host[:port]/]path[:tag][@sha256:…]`. A reference without a
 * host gets Docker's defaults (docker.io, library/), so that every image has one place under `images/<host>/<path>`.
 */
export interface ImageRef {
  readonly host: string;
  readonly path: string;
  readonly tag?: string | undefined;
  readonly digest?: string | undefined;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function parseImageRef(text: string): ImageRef | undefined {
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const parts = rest.split('/');
  let host = 'docker.io';
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) {
    host = parts.shift()!;
    if (!/^[a-z0-9.-]+(?::\d+)?$/.test(host)) return undefined;
  } else if (parts.length === 1) {
    parts.unshift('library');
  }
  if (parts.length === 0 || !parts.every((part) => COMPONENT.test(part))) return undefined;
  return { host, path: parts.join('/'), tag, digest };
}

export function nameOf(ref: ImageRef): string {
  return `${ref.host}/${ref.path}`;
}

export function formatImageRef(ref: ImageRef): string {
  return `${nameOf(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * The tag under which ferry loads a pinned image into the engine. Images loaded from a layout carry no registry
 * digest, so the digest goes into the tag: the same reference always names the same content.
 */
export function localTagOf(ref: ImageRef & { digest: string }): string {
  return `${nameOf(ref)}:${ref.digest.replace(':', '-')}`;
}
