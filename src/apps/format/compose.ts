import type { StatusGoal } from '../../tuf/target.js';
import { parseDocument, type Document } from 'yaml';
import { localTagOf, parseImageRef, type ImageRef } from './image-ref.js';

/**
 * The names a compose project's file may have, in the Compose specification's order of precedence: where a project
 * holds several, the first one is the project's compose file (the others travel along as plain files).
 */
export const COMPOSE_FILE_NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'] as const;

/** The project's compose file among the names of the files at the top of its directory, or undefined. */
export function composeFileAmong(topLevelFiles: Iterable<string>): string | undefined {
  const present = new Set(topLevelFiles);
  return COMPOSE_FILE_NAMES.find((name) => present.has(name));
}

export const COMPOSE_FILE_LIST = COMPOSE_FILE_NAMES.join(', ');
/** The file `run` hands to docker-compose: the verified compose file with images named by their local tags. */
export const RENDERED_COMPOSE_FILE = 'docker-compose.ferry.yml';

export interface ComposeService {
  readonly name: string;
  readonly image: string;
  /** The service's compose entry has a healthcheck with a test of its own (`disable: true` or NONE: none). */
  readonly healthcheck: boolean;
}

export interface ComposeProject {
  readonly document: Document;
  readonly services: readonly ComposeService[];
}

/** Parses a compose file; every service must name an image (ferry does not build). */
export function parseCompose(text: string): ComposeProject {
  const document = parseDocument(text, { uniqueKeys: true });
  if (document.errors.length > 0) throw new Error(`not valid YAML: ${document.errors[0]!.message}`);
  // Aliases are expanded with a cap, so a YAML bomb on the stick cannot exhaust memory.
  const root = document.toJS({ maxAliasCount: 100 }) as {
    services?: Record<string, { image?: unknown; build?: unknown; healthcheck?: unknown }>;
  } | null;
  if (typeof root !== 'object' || root === null || typeof root.services !== 'object' || root.services === null) {
    throw new Error('has no services');
  }
  const services: ComposeService[] = [];
  for (const [name, service] of Object.entries(root.services)) {
    if (typeof service?.image !== 'string')
      throw new Error(`service "${name}" names no image (ferry does not build images)`);
    services.push({ name, image: service.image, healthcheck: hasHealthcheck(service.healthcheck) });
  }
  if (services.length === 0) throw new Error('has no services');
  return { document, services };
}

function hasHealthcheck(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { disable, test } = value as { disable?: unknown; test?: unknown };
  if (disable === true) return false;
  // Without a test of its own it only tunes the image's, which the compose file cannot promise: not counted.
  if (test === undefined || test === 'NONE' || (Array.isArray(test) && test[0] === 'NONE')) return false;
  return true;
}

/** The goal an app reaches by default: healthy when a service of it has a healthcheck, else running. */
export function defaultStatusGoal(services: readonly ComposeService[]): StatusGoal {
  return services.some((service) => service.healthcheck) ? 'healthy' : 'running';
}

/** Every service's image, which must be pinned by digest: a tag alone could name anything. */
export function pinnedImages(project: ComposeProject): Array<ImageRef & { digest: string; service: string }> {
  return project.services.map((service) => {
    const ref = parseImageRef(service.image);
    if (ref === undefined) throw new Error(`service "${service.name}": "${service.image}" is not an image reference`);
    if (ref.digest === undefined)
      throw new Error(`service "${service.name}": image "${service.image}" is not pinned by digest`);
    return { ...ref, digest: ref.digest, service: service.name };
  });
}

export function setServiceImage(project: ComposeProject, service: string, image: string): void {
  project.document.setIn(['services', service, 'image'], image);
}

/** The compose file with every pinned image replaced by its local tag, for docker-compose on the device. */
export function renderForEngine(text: string): string {
  const project = parseCompose(text);
  for (const image of pinnedImages(project)) setServiceImage(project, image.service, localTagOf(image));
  return project.document.toString();
}
