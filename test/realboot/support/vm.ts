import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, promises as fs, type WriteStream } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Bootloader } from './disk-image.js';
import { BOOTED_MARKER } from './rootfs.js';

/** How long one boot may take, reset to shell: a few seconds normally, much more on a loaded 2-core machine. */
export const BOOT_TIMEOUT_MS = 120_000;
/** How long a command in the guest may take unless its caller says otherwise. */
export const COMMAND_TIMEOUT_MS = 120_000;
/** What busybox ash prints when the console shell starts. */
const SHELL_BANNER = /built-in shell \(ash\)/;
/** How much of the serial log an error message carries. */
const LOG_TAIL_BYTES = 3000;

export interface VmOptions {
  readonly bootloader: Bootloader;
  /** The system disk (a copy of a built image: the VM writes it). */
  readonly disk: string;
  /** The patched qemu-x86 U-Boot ROM; the BIOS for `uboot`, unused for `grub` (SeaBIOS loads GRUB from the MBR). */
  readonly ubootRom: string;
  /**
   * Disks attached from power-on as further virtio disks (/dev/vdb, … in this order): sticks already inserted, as an
   * image path or with a throttle that makes the disk as slow as a real stick.
   */
  readonly sticks?: readonly StickDrive[];
  /** Everything the serial console prints is appended here. */
  readonly logFile: string;
  readonly memoryMiB?: number;
}

/** QEMU's I/O throttling of one drive (`-drive …,throttling.*`): bytes per second and write requests per second. */
export interface IoThrottle {
  readonly writeBytesPerSecond: number;
  readonly readBytesPerSecond: number;
  readonly writeRequestsPerSecond: number;
}

/**
 * A USB flash stick as technicians carry them: 20 MB/s sequential write, 40 MB/s read, 300 write requests a second
 * (flash rewrites a whole erase block for a small write, so many small files cost requests, not bytes).
 */
export const USB_STICK_THROTTLE: IoThrottle = {
  writeBytesPerSecond: 20_000_000,
  readBytesPerSecond: 40_000_000,
  writeRequestsPerSecond: 300,
};

/** A disk attached from power-on: an image, optionally throttled. */
export type StickDrive = string | { readonly image: string; readonly throttle: IoThrottle };

/** The value of QEMU's `-drive` option for a disk of the machine: a raw image on virtio, throttled if asked. */
export function driveArgument(drive: StickDrive): string {
  if (typeof drive === 'string') return `file=${drive},format=raw,if=virtio`;
  const { throttle } = drive;
  return [
    `file=${drive.image},format=raw,if=virtio`,
    `throttling.bps-write=${throttle.writeBytesPerSecond}`,
    `throttling.bps-read=${throttle.readBytesPerSecond}`,
    `throttling.iops-write=${throttle.writeRequestsPerSecond}`,
  ].join(',');
}

export interface BootInfo {
  /** The rootfs version /sbin/init printed (v1, v2…). */
  readonly version: string;
  /** The `ostree=` argument of the booted kernel. */
  readonly deployment: string;
  /** From power-on, reset or reboot command to the marker. */
  readonly seconds: number;
  /** What the console printed from the power-on or reboot up to the shell. */
  readonly console: string;
}

export interface CommandResult {
  readonly code: number;
  /** What the command printed on the console, carriage returns removed. */
  readonly output: string;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const qemu of running) qemu.kill('SIGKILL');
});

let vmCount = 0;

/**
 * A QEMU x86_64 machine (TCG: KVM does not work on these hosts) driven over its serial console: wait for text, type
 * commands and read their exit codes, reboot it, cut its power, plug a stick in and out through the QEMU monitor.
 * Every wait has a timeout; a timeout or an unexpected exit throws an Error that ends with the serial log's tail and
 * the log's path.
 */
export class Vm {
  private qemu: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exitStatus: string | undefined;
  private console = '';
  private cursor = 0;
  private wake: (() => void) | undefined;
  private readonly log: WriteStream;
  private commands = 0;
  private bootStartedAt = 0;
  readonly monitorSocket: string;

  private constructor(readonly options: VmOptions) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    this.monitorSocket = path.join(os.tmpdir(), `ferry-vm-${process.pid}-${++vmCount}.monitor`);
  }

  /** Powers the machine on. */
  static async start(options: VmOptions): Promise<Vm> {
    const vm = new Vm(options);
    await vm.powerOn();
    return vm;
  }

  get logFile(): string {
    return this.options.logFile;
  }

  /** Powers on again after a power cut or a poweroff, with the same disks (and the sticks given at start). */
  async powerOn(): Promise<void> {
    if (this.qemu !== undefined) throw new Error('the VM is already running');
    await fs.rm(this.monitorSocket, { force: true });
    const args = [
      '-accel',
      'tcg',
      '-m',
      String(this.options.memoryMiB ?? 1024),
      '-nographic',
      '-vga',
      'none',
      // No network card: nothing to configure, and SeaBIOS has no iPXE ROM to offer.
      '-nic',
      'none',
      '-monitor',
      `unix:${this.monitorSocket},server,nowait`,
      ...(this.options.bootloader === 'uboot' ? ['-bios', this.options.ubootRom] : []),
      '-drive',
      driveArgument(this.options.disk),
      ...(this.options.sticks ?? []).flatMap((stick) => ['-drive', driveArgument(stick)]),
    ];
    this.note(`qemu-system-x86_64 ${args.join(' ')}`);
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.qemu = qemu;
    this.exitStatus = undefined;
    this.bootStartedAt = Date.now();
    // What the console printed before belongs to an earlier boot: no wait may match it.
    this.cursor = this.console.length;
    running.add(qemu);
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      this.console += text;
      this.log.write(text);
      this.wake?.();
    };
    qemu.stdout!.on('data', onOutput);
    qemu.stderr!.on('data', onOutput);
    this.exited = new Promise((resolve) => {
      const done = (status: string) => {
        running.delete(qemu);
        this.exitStatus = status;
        this.qemu = undefined;
        this.note(`QEMU ${status}`);
        this.wake?.();
        resolve();
      };
      qemu.once('error', (error) => done(`could not start: ${error.message}`));
      qemu.once('exit', (code, signal) => done(signal === null ? `exited with ${code}` : `killed by ${signal}`));
    });
  }

  /**
   * Waits for `pattern` in what the console printed since the last match; returns the match and the text before it.
   */
  async expect(pattern: RegExp, timeoutMs: number): Promise<{ match: RegExpExecArray; before: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Only whole lines are matched: the serial console delivers a line in pieces, and a pattern whose end is open
      // (`\S*`, `\d+`, `[^\n]*`) would otherwise match the first piece and capture a cut value.
      const rest = this.console.slice(this.cursor, this.console.lastIndexOf('\n') + 1);
      const match = pattern.exec(rest);
      if (match !== null) {
        this.cursor += match.index + match[0].length;
        return { match, before: rest.slice(0, match.index) };
      }
      if (this.exitStatus !== undefined) throw this.failure(`QEMU ${this.exitStatus} while waiting for ${pattern}`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure(`no ${pattern} on the console within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * Waits for /sbin/init's marker and then the shell, and returns what the console printed before it: the
   * bootloader's lines, kernel panics of failed boots, the boot hook. The time counts from power-on or the last
   * reboot to the marker. Nothing is typed before the shell says it is there, so no echo mixes with the boot hook.
   */
  async waitForBoot(timeoutMs = BOOT_TIMEOUT_MS): Promise<BootInfo> {
    const booted = await this.expect(new RegExp(`${BOOTED_MARKER} version=(\\S+) deployment=(\\S*)`), timeoutMs);
    const seconds = (Date.now() - this.bootStartedAt) / 1000;
    const shell = await this.expect(SHELL_BANNER, timeoutMs);
    await this.run('true', timeoutMs);
    return {
      version: booted.match[1]!,
      deployment: booted.match[2]!,
      seconds,
      console: `${booted.before}${booted.match[0]}${shell.before}`.replace(/\r/g, ''),
    };
  }

  /** Types `text` and Enter, a few characters at a time (a serial FIFO drops long bursts). */
  async sendLine(text: string): Promise<void> {
    const qemu = this.qemu;
    if (qemu === undefined) throw this.failure(`cannot type "${text}": the VM is not running`);
    const line = `${text}\r`;
    for (let at = 0; at < line.length; at += 16) {
      qemu.stdin!.write(line.slice(at, at + 16));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /**
   * Runs `command` in the guest's shell and returns its exit code and output. The markers around it are spelt so that
   * the echo of the typed line never matches them.
   */
  async run(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> {
    const id = ++this.commands;
    await this.sendLine(`echo "@@B""${id}@@"; ${command}; echo "@@RC""${id}=$?@@"`);
    await this.expect(new RegExp(`@@B${id}@@\\r?\\n`), timeoutMs);
    const { match, before } = await this.expect(new RegExp(`@@RC${id}=(\\d+)@@`), timeoutMs);
    return { code: Number(match[1]), output: before.replace(/\r/g, '') };
  }

  /** Runs `command` and fails (with the console's tail) unless it exits 0; returns its output. */
  async mustRun(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const result = await this.run(command, timeoutMs);
    if (result.code !== 0) throw this.failure(`\`${command}\` exited with ${result.code}`);
    return result.output;
  }

  /**
   * Types `command`, which ends with the guest rebooting itself (ferry's boot hook acting on 100), and waits for
   * `line`, the hook's line that says so; the next waitForBoot times the boot from that line.
   */
  async runUntilGuestReboots(command: string, line: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    await this.sendLine(command);
    const { match } = await this.expect(line, timeoutMs);
    this.bootStartedAt = Date.now();
    return match;
  }

  /** A real reboot: flush, then `reboot -f` (no init to stop services); the firmware and bootloader run again. */
  async reboot(): Promise<void> {
    this.cursor = this.console.length;
    await this.sendLine('sync; reboot -f');
    this.bootStartedAt = Date.now();
  }

  /** Cuts the power: SIGKILL to QEMU, nothing flushed, no shutdown. */
  async powerCut(): Promise<void> {
    this.qemu?.kill('SIGKILL');
    await this.exited;
  }

  /** A clean power-off from the shell; waits for QEMU to exit. */
  async powerOff(timeoutMs = 60_000): Promise<void> {
    if (this.qemu === undefined) return;
    await this.sendLine('sync; poweroff -f');
    const timer = setTimeout(() => this.qemu?.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops QEMU if it still runs (for `after` hooks). */
  async kill(): Promise<void> {
    await this.powerCut();
    this.log.end();
    await fs.rm(this.monitorSocket, { force: true });
  }

  /** Inserts a stick while the machine runs: a new drive and a virtio-blk PCI device on it (ACPI PCI hot-plug). */
  async hotplug(image: string, id = 'stick'): Promise<void> {
    await this.monitor(`drive_add 0 if=none,id=${id},file=${image},format=raw`);
    await this.monitor(`device_add virtio-blk-pci,drive=${id},id=${id}-device`);
  }

  /** Pulls a hot-plugged stick out (the guest is asked to release it, as an ACPI eject). */
  async unplug(id = 'stick'): Promise<void> {
    await this.monitor(`device_del ${id}-device`);
  }

  /** One command on the QEMU monitor (HMP); returns what it answered. */
  async monitor(command: string, timeoutMs = 10_000): Promise<string> {
    const socket = net.createConnection(this.monitorSocket);
    try {
      let text = '';
      let wake: (() => void) | undefined;
      socket.on('data', (chunk: Buffer) => {
        // HMP draws its prompt with terminal escapes.
        text += chunk.toString('utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
        wake?.();
      });
      const failed = new Promise<never>((_, reject) => socket.once('error', reject));
      const prompts = async (count: number): Promise<void> => {
        const deadline = Date.now() + timeoutMs;
        while (text.split('(qemu)').length - 1 < count) {
          if (Date.now() > deadline) throw this.failure(`the QEMU monitor did not answer "${command}": ${text}`);
          await Promise.race([
            failed,
            new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 200);
            }),
          ]);
        }
      };
      await prompts(1);
      const start = text.length;
      socket.write(`${command}\n`);
      await prompts(2);
      const answer = text
        .slice(start)
        .replace(/\(qemu\)\s*$/, '')
        .trim();
      this.note(`monitor: ${command} -> ${answer.split('\n').slice(1).join(' ')}`);
      if (/error|failed|could not|not found/i.test(answer.split('\n').slice(1).join('\n')))
        throw this.failure(`the QEMU monitor refused "${command}": ${answer}`);
      return answer;
    } finally {
      socket.destroy();
    }
  }

  /** An Error for a failed wait or command: the message ends with the serial log's tail and the log's path. */
  failure(message: string): Error {
    const tail = this.console.slice(-LOG_TAIL_BYTES).replace(/\r/g, '');
    return new Error(
      `${message}\n--- last ${LOG_TAIL_BYTES} bytes of the serial console:\n${tail}\n--- log: ${this.logFile}`,
    );
  }

  private note(line: string): void {
    this.log.write(`\n[vm ${new Date().toISOString()}] ${line}\n`);
  }
}
