import type { AppPin } from '../tuf/target.js';

/**
 * What it takes to move from one target to another (Pantavisor's restart policy):
 *   - the rootfs changed: reboot;
 *   - an app with policy `system` changed (added, updated or removed): reboot, even with the same rootfs;
 *   - only `container` apps changed: restart the container engine, no reboot;
 *   - nothing changed: nothing to do.
 * A mix takes the strongest. Pure, and tested as a table.
 */
export type TransitionKind = 'none' | 'restart-engine' | 'reboot';

export interface Transition {
  readonly kind: TransitionKind;
  readonly rootfsChanged: boolean;
  /** Why, one line per change, for the status record and the operator. */
  readonly reasons: readonly string[];
}

export interface TargetShape {
  readonly commit: string;
  readonly apps: Readonly<Record<string, AppPin>>;
}

export function decideTransition(from: TargetShape, to: TargetShape): Transition {
  const reasons: string[] = [];
  let kind: TransitionKind = 'none';
  const rootfsChanged = from.commit !== to.commit;
  if (rootfsChanged) {
    kind = 'reboot';
    reasons.push('the rootfs changed');
  }
  const names = [...new Set([...Object.keys(from.apps), ...Object.keys(to.apps)])].sort();
  for (const name of names) {
    const before = from.apps[name];
    const after = to.apps[name];
    const change =
      before === undefined
        ? 'added'
        : after === undefined
          ? 'removed'
          : before.digest !== after.digest
            ? 'updated'
            : undefined;
    if (change === undefined) continue;
    const policy = (after ?? before)!.restartPolicy;
    reasons.push(`app "${name}" ${change} (restart policy ${policy})`);
    if (policy === 'system') kind = 'reboot';
    else if (kind === 'none') kind = 'restart-engine';
  }
  return { kind, rootfsChanged, reasons };
}
