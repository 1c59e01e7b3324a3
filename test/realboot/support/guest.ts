import path from 'node:path';
import type { Bootloader } from './disk-image.js';
import { NO_BOOT_HOOK_FILE } from './rootfs.js';
import type { Vm } from './vm.js';

/**
 * What the tests ask the guest, in one place: ferry's commands and their JSON, OSTree's view of the deployments, the
 * bootloader env through the device's own tools, a stick mounted by the guest's kernel.
 */

export interface FerryResult {
  readonly code: number;
  /** The parsed JSON object ferry printed on stdout (its human text goes to stderr, left out here). */
  readonly json: Record<string, any>;
}

/** Runs `ferry <args> --json` in the guest; the exit code is the command's own. */
export async function guestFerry(vm: Vm, args: string, timeoutMs?: number): Promise<FerryResult> {
  const result = await vm.run(`ferry ${args} --json 2>/tmp/ferry.stderr`, timeoutMs);
  const start = result.output.indexOf('{');
  const end = result.output.lastIndexOf('}');
  if (start < 0 || end < start) {
    const stderr = await vm.run('cat /tmp/ferry.stderr');
    throw vm.failure(`ferry ${args} printed no JSON (exit ${result.code}): ${result.output}${stderr.output}`);
  }
  return { code: result.code, json: JSON.parse(result.output.slice(start, end + 1)) };
}

/** The deployments `ostree admin status` lists, in boot order; `booted` marks the one running. */
export async function guestDeployments(vm: Vm): Promise<Array<{ commit: string; booted: boolean }>> {
  const out = await vm.mustRun('ostree admin status');
  const deployments: Array<{ commit: string; booted: boolean }> = [];
  for (const line of out.split('\n')) {
    const match = /^(\*?)\s*\S+\s+([0-9a-f]{64})\.\d+/.exec(line);
    if (match) deployments.push({ commit: match[2]!, booted: match[1] === '*' });
  }
  return deployments;
}

/** The booted deployment's commit, as OSTree sees it. */
export async function guestBootedCommit(vm: Vm): Promise<string | undefined> {
  return (await guestDeployments(vm)).find((deployment) => deployment.booted)?.commit;
}

/** The bootloader env, read with the device's own tool. */
export async function guestBootEnv(vm: Vm, bootloader: Bootloader): Promise<Record<string, string>> {
  const out = await vm.mustRun(
    bootloader === 'grub' ? 'grub-editenv /boot/grub/grubenv list' : 'fw_printenv -c /etc/fw_env.config',
  );
  const vars: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/** The guest mounts the stick at `mountPoint` (read-write: install leaves its report beside the bundle). */
export async function guestMountStick(
  vm: Vm,
  filesystem: 'vfat' | 'exfat',
  device = '/dev/vdb',
  mountPoint = '/mnt/stick',
): Promise<void> {
  await vm.mustRun(`mkdir -p ${mountPoint} && mount -t ${filesystem} ${device} ${mountPoint}`);
}

/**
 * From the next boot on, /sbin/init leaves the boot hook alone (the file is in /etc, which OSTree carries into later
 * deployments): for tests that run ferry's commands themselves, one at a time.
 */
export async function guestDisableBootHook(vm: Vm): Promise<void> {
  await vm.mustRun(`mkdir -p ${path.dirname(NO_BOOT_HOOK_FILE)} && touch ${NO_BOOT_HOOK_FILE} && sync`);
}
