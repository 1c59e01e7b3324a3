import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { loadDeviceConfig } from '../device/config.js';
import { openDevice, type Device } from '../device/device.js';
import { FerryError } from '../errors.js';
import { LOG_LEVELS, type CommandContext } from './command-context.js';

/** The option parsers and options that several commands share, defined once so that their help reads the same. */

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function wholeNumber(name: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new FerryError('USAGE', `${name} must be a whole number, at least ${min} (got "${value}")`);
    }
    return Number(value);
  };
}

export const positiveInteger = (name: string) => wholeNumber(name, 1);

/** `-c, --config`: where the commands that act on this device read its configuration. */
export function configOption(): Option {
  return new Option(
    '-c, --config <file|dir>',
    'configuration file or directory (repeatable; default: the sota.toml locations aktualizr-lite reads)',
  ).argParser(collect);
}

/** The options of install, run and status: the device's configuration, and --json. */
export function deviceOptions(command: Command): Command {
  return command.addOption(configOption()).option('--json', 'print the result as one JSON object');
}

export interface DeviceCommandOptions {
  config?: string[];
  json?: boolean;
}

/**
 * The device the --config options describe. Its configuration also says which exit-code table the command answers
 * with, from here on.
 */
export async function configuredDevice(
  options: DeviceCommandOptions,
  context: Pick<CommandContext, 'useExitCodes' | 'name' | 'io'>,
): Promise<Device> {
  return openDevice(await loadDeviceConfig(options.config ?? [], context.useExitCodes), {
    // A callback program that failed is a warning: the command goes on, and its one report line stays its own.
    warn: (line) => context.io.stderr(`${context.name}: warning: ${line}\n`),
  });
}

/** `--log-level N`, as aklite-offline takes it: 0-5 (trace, debug, info, warning, error, fatal). */
export function logLevelOption(): Option {
  return new Option(
    '--log-level <0-5>',
    `log level: ${LOG_LEVELS.map((name, level) => `${level} ${name}`).join(', ')}; from 3 on, no progress bars and, with --json, no human text on stderr`,
  )
    .default(2)
    .argParser((value: string) => {
      const level = wholeNumber('--log-level', 0)(value);
      if (level >= LOG_LEVELS.length)
        throw new FerryError('USAGE', `--log-level must be 0 to ${LOG_LEVELS.length - 1} (got "${value}")`);
      return level;
    });
}

/** `--progress-fd N`: the number of a file descriptor the caller opened for us. */
export function progressFdOption(): Option {
  return new Option(
    '--progress-fd <n>',
    'write progress as JSON lines to this file descriptor, opened for writing by the caller (e.g. 3>progress.jsonl)',
  ).argParser((value: string) => {
    const fd = wholeNumber('--progress-fd', 0)(value);
    const refusal = progressFdRefusal(fd);
    if (refusal !== undefined) throw new FerryError('USAGE', refusal);
    return fd;
  });
}

const O_ACCMODE = 0o3;
const O_RDONLY = 0;

/**
 * Why `fd` cannot take the progress lines, or undefined if it can. Checked before any work: a number that names no
 * descriptor the caller handed over may still be open in this process, because the runtime's own event loop sits
 * at 3 and up (epoll and eventfd descriptors, pipes whose both ends it holds), and writing there crashes the process
 * after the work is done. None of those can carry anything to anyone else, so they are refused, as is a descriptor
 * open for reading only.
 */
export function progressFdRefusal(fd: number): string | undefined {
  const notGiven = `--progress-fd ${fd} is not an open file descriptor given to this command: open it when starting the command, e.g. ${fd}>progress.jsonl`;
  try {
    fstatSync(fd);
  } catch {
    return notGiven;
  }
  let link: string;
  let flags: number;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
    flags = fdinfoFlags(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  } catch {
    // Without /proc there is no telling whose it is: an open descriptor is taken.
    return undefined;
  }
  if (link.startsWith('anon_inode:') || (/^pipe:\[\d+\]$/.test(link) && holdsOtherEnd(fd, link, flags)))
    return notGiven;
  if ((flags & O_ACCMODE) === O_RDONLY)
    return `--progress-fd ${fd} is open for reading only: open it for writing, e.g. ${fd}>progress.jsonl`;
  return undefined;
}

/**
 * True when this process also holds the other end of the pipe `fd` is: what is written there comes back here.
 * (Holding the same end twice is common: `N> >(reader)` passes the pipe as N and as /dev/fd/63.)
 */
function holdsOtherEnd(fd: number, link: string, flags: number): boolean {
  return readdirSync('/proc/self/fd').some((name) => {
    if (name === String(fd)) return false;
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) !== link) return false;
      return (fdinfoFlags(readFileSync(`/proc/self/fdinfo/${name}`, 'utf8')) & O_ACCMODE) !== (flags & O_ACCMODE);
    } catch {
      return false;
    }
  });
}

/** The `flags` of a /proc/<pid>/fdinfo file (octal there). */
function fdinfoFlags(fdinfo: string): number {
  return parseInt(/^flags:\s*([0-7]+)$/m.exec(fdinfo)?.[1] ?? '1', 8);
}
