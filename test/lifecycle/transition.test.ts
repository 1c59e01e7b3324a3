import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decideTransition, type TargetShape } from '../../src/lifecycle/transition.js';
import type { AppPin, RestartPolicy } from '../../src/tuf/target.js';

const pin = (n: number, restartPolicy: RestartPolicy = 'container'): AppPin => {
  const digest = `sha256:${n.toString(16).padStart(64, '0')}`;
  return { uri: `apps.ferry.local/f/app@${digest}`, digest, restartPolicy };
};
const shape = (commit: string, apps: Record<string, AppPin> = {}): TargetShape => ({ commit, apps });

describe('transition (restart policy)', () => {
  const cases: Array<[string, TargetShape, TargetShape, string]> = [
    ['nothing changed', shape('a', { web: pin(1) }), shape('a', { web: pin(1) }), 'none'],
    ['rootfs changed, apps the same', shape('a', { web: pin(1) }), shape('b', { web: pin(1) }), 'reboot'],
    ['rootfs changed, no apps', shape('a'), shape('b'), 'reboot'],
    ['only a container app updated', shape('a', { web: pin(1) }), shape('a', { web: pin(2) }), 'restart-engine'],
    ['a container app added', shape('a'), shape('a', { web: pin(1) }), 'restart-engine'],
    ['a container app removed', shape('a', { web: pin(1) }), shape('a'), 'restart-engine'],
    [
      'a system app updated, same rootfs',
      shape('a', { db: pin(1, 'system') }),
      shape('a', { db: pin(2, 'system') }),
      'reboot',
    ],
    ['a system app removed', shape('a', { db: pin(1, 'system') }), shape('a'), 'reboot'],
    ['a system app added', shape('a'), shape('a', { db: pin(1, 'system') }), 'reboot'],
    [
      'a container app and a system app changed: the reboot wins',
      shape('a', { web: pin(1), db: pin(3, 'system') }),
      shape('a', { web: pin(2), db: pin(4, 'system') }),
      'reboot',
    ],
    [
      'rootfs and a container app changed: the reboot wins',
      shape('a', { web: pin(1) }),
      shape('b', { web: pin(2) }),
      'reboot',
    ],
    [
      'only the policy changed, same content',
      shape('a', { web: pin(1) }),
      shape('a', { web: pin(1, 'system') }),
      'none',
    ],
  ];
  for (const [name, from, to, expected] of cases) {
    test(`${name}: ${expected}`, () => assert.equal(decideTransition(from, to).kind, expected));
  }

  test('the reasons name every change', () => {
    const transition = decideTransition(shape('a', { web: pin(1) }), shape('b', { web: pin(2), db: pin(3, 'system') }));
    assert.deepEqual(transition.reasons, [
      'the rootfs changed',
      'app "db" added (restart policy system)',
      'app "web" updated (restart policy container)',
    ]);
    assert.equal(transition.rootfsChanged, true);
  });
});
