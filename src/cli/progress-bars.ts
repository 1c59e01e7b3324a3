import cliProgress from 'cli-progress';
import type { ProgressListener } from '../progress.js';

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * Byte progress bars on a terminal, one per phase, with rate and ETA. Drawn on `stream` (stderr), so that stdout
 * keeps only the result. Only for a TTY: anywhere else there are neither bars nor escape codes.
 */
export function terminalProgress(stream: NodeJS.WriteStream): { listener: ProgressListener; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  let phase = '';
  let started = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  const listener: ProgressListener = (event) => {
    const key = `${event.phase} ${event.target ?? ''}`;
    if (bar === undefined || key !== phase) {
      stop();
      phase = key;
      started = Date.now();
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${event.phase.padEnd(7)} [{bar}] {percentage}% | {done} of {size} | {rate}/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(1, event.total), 0, { done: human(0), size: human(event.total), rate: human(0) });
    }
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    bar.setTotal(Math.max(1, event.total));
    bar.update(Math.min(event.bytes, Math.max(1, event.total)), {
      done: human(event.bytes),
      size: human(event.total),
      rate: human(event.bytes / seconds),
    });
  };
  return { listener, stop };
}
