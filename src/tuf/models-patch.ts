import { TargetFile, Targets } from '@tufjs/models';

/**
 * @tufjs/models 4.1.1 builds and serializes a targets map with an object spread inside a reduce: quadratic in the
 * number of targets (about 30 s to read a targets.json of 10,000 targets, a minute to sign one). Both are replaced
 * here by one pass that gives the same objects and the same JSON, so that a factory's full targets.json costs what
 * reading it costs. Imported for its effect by every module that reads or signs metadata.
 */
const isObjectRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' &&
  value !== null &&
  Object.values(value).every((entry) => typeof entry === 'object' && entry !== null);

type TargetsStatics = { fromJSON(data: Record<string, unknown>): Targets };
const originalFromJSON = (Targets as unknown as TargetsStatics).fromJSON.bind(Targets);
const originalToJSON = Targets.prototype.toJSON;

(Targets as unknown as TargetsStatics).fromJSON = (data: Record<string, unknown>): Targets => {
  const { targets, ...rest } = data;
  // Everything but the map goes through the models' own parser, with its checks.
  const parsed = originalFromJSON(rest);
  if (targets !== undefined) {
    if (!isObjectRecord(targets)) throw new TypeError('targets must be an object');
    for (const [name, target] of Object.entries(targets))
      parsed.targets[name] = TargetFile.fromJSON(name, target as Parameters<typeof TargetFile.fromJSON>[1]);
  }
  return parsed;
};

Targets.prototype.toJSON = function toJSON(this: Targets) {
  const self = this as { targets: Targets['targets'] };
  const targets = self.targets;
  self.targets = {};
  let json: Record<string, unknown>;
  try {
    json = originalToJSON.call(this) as Record<string, unknown>;
  } finally {
    self.targets = targets;
  }
  const map: Record<string, unknown> = {};
  for (const [name, target] of Object.entries(targets)) map[name] = target.toJSON();
  json['targets'] = map;
  return json as ReturnType<typeof originalToJSON>;
};

export {};
