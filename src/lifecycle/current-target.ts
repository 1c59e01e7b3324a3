import type { CommandReport } from '../command-report.js';
import { readBooted, type Device } from '../device/device.js';
import { currentTargetOf } from './plan.js';
import { loadDeviceStatus } from './rebuild-status.js';

/**
 * `aklite-offline current`: the target the device runs (the booted commit, named as the status record knows it) and
 * its apps, in aklite-offline's words. Reads only.
 */
export async function describeCurrent(device: Device): Promise<CommandReport> {
  const { status } = await loadDeviceStatus(device);
  const booted = await readBooted(device);
  const target = currentTargetOf(status, booted, []);
  const apps = Object.entries(target?.apps ?? {}).map(([name, pin]) => ({ name, uri: pin.uri }));
  // aklite-offline marks each app "on" or "off" by its pacman.compose_apps shortlist; ferry runs every app of a
  // target, so each is on.
  const lines = [
    `Target: ${target?.name ?? 'unknown'}`,
    `Ostree hash: ${booted.commit}`,
    ...(apps.length > 0 ? ['Apps:', ...apps.map((app) => `\ton : ${app.name} -> ${app.uri}`)] : []),
  ];
  return {
    outcome: 'OK',
    message: lines.join('\n'),
    data: { target: target?.name ?? null, version: target?.version ?? null, ostreeHash: booted.commit, apps },
  };
}
