import cliProgress from 'cli-progress';
import type { ProgressEvent, ProgressListener } from '../progress.js';
import { formatBytes } from '../util/format-bytes.js';

/** 42s, 3m05s, 2h07m. */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const pad = (n: number) => String(n).padStart(2, '0');
  if (whole >= 3600) return `${Math.floor(whole / 3600)}h${pad(Math.floor((whole % 3600) / 60))}m`;
  if (whole >= 60) return `${Math.floor(whole / 60)}m${pad(whole % 60)}s`;
  return `${whole}s`;
}

/** The rate looks this far back: long enough to smooth bursts, short enough to follow a medium that slows down. */
const RATE_WINDOW_MS = 5000;
/** A rate from less time than this would be a guess (one burst looks like hundreds of GiB/s). */
const RATE_MIN_SPAN_MS = 1000;
/** No sample for this long: the copy is stalled, not between two samples. */
const RATE_STALL_MS = 2000;

/** One phase on the screen: how far it is, and the recent samples its rate and ETA are taken from. */
class PhaseLine {
  private samples: Array<{ at: number; done: number }> = [];
  done = 0;
  total = 0;

  constructor(readonly phase: ProgressEvent['phase']) {}

  update(done: number, total: number, now: number): void {
    // A phase does not go back: a late sample of an older count changes nothing.
    this.done = total === this.total ? Math.max(this.done, done) : done;
    this.total = total;
    this.samples = [...this.samples.filter((sample) => sample.at >= now - RATE_WINDOW_MS), { at: now, done }];
  }

  get complete(): boolean {
    return this.done >= this.total;
  }

  /**
   * Units per second over the last few seconds, or undefined while there is too little to tell. Up to the last
   * sample, unless none came for a while: then up to now, so that a stalled copy shows its rate falling.
   */
  private rate(now: number): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (first === undefined || last === undefined) return undefined;
    const end = now - last.at > RATE_STALL_MS ? now : last.at;
    if (end - first.at < RATE_MIN_SPAN_MS) return undefined;
    return (last.done - first.done) / ((end - first.at) / 1000);
  }

  text(now: number, width: number): string {
    const percent = Math.floor((100 * Math.min(this.done, this.total)) / this.total);
    const tail = `${String(percent).padStart(3)}% | ${this.phase === 'testing' ? this.testingText() : this.bytesText(now)}`;
    // Every line's bar is as wide, from what the terminal leaves beside the longest text; the line is never wider
    // than the terminal, since a wrapped line would throw off where the next redraw starts.
    const barWidth = Math.max(MIN_BAR_WIDTH, Math.min(MAX_BAR_WIDTH, width - 1 - 11 - TEXT_ROOM));
    return `${this.phase.padEnd(7)} [${drawBar(this.done / this.total, barWidth)}] ${tail}`.slice(
      0,
      Math.max(1, width - 1),
    );
  }

  private bytesText(now: number): string {
    // Some phases are first heard of part-way (a pull is counted once its objects are listed): no duration or
    // average is made up for them.
    if (this.complete) return formatBytes(this.total);
    const rate = this.rate(now);
    const eta = rate === undefined || rate <= 0 ? '--' : formatDuration((this.total - this.done) / rate);
    return `${formatBytes(this.done)} of ${formatBytes(this.total)} | ${rate === undefined ? '--' : formatBytes(rate)}/s | ETA ${eta}`;
  }

  private testingText(): string {
    if (this.complete) return `${formatDuration(this.total)} testing window passed, the apps kept running`;
    return `${formatDuration(this.total - this.done)} left of ${formatDuration(this.total)}`;
  }
}

const MAX_BAR_WIDTH = 40;
const MIN_BAR_WIDTH = 10;
/** Room for the longest text beside a bar: " 42% | 1023.9 MiB of 1023.9 MiB | 1023.9 MiB/s | ETA 59m59s". */
const TEXT_ROOM = 60;

/** A full bar only when the phase is: the filled part rounds down. */
function drawBar(fraction: number, width: number): string {
  const filled = Math.floor(Math.min(1, Math.max(0, fraction)) * width);
  return '\u2588'.repeat(filled) + '\u2591'.repeat(width - filled);
}

/**
 * Progress bars on a terminal, one line per phase, each kept in place while the phases run side by side (an
 * export copies the rootfs and the apps at once). Bytes with rate and ETA; the testing window counts down. A phase
 * with nothing to do gets no line. Drawn on `stream` (stderr), so that stdout keeps only the result; only for a TTY.
 * stop() draws every line one last time, as it ended.
 */
export function terminalProgress(stream: NodeJS.WriteStream): { listener: ProgressListener; stop(): void } {
  const lines = new Map<ProgressEvent['phase'], { line: PhaseLine; bar: cliProgress.SingleBar }>();
  const bars = new cliProgress.MultiBar({
    stream,
    // Every line is drawn here, from its phase's own state.
    format: (_options, params, payload: { line: PhaseLine }) => payload.line.text(Date.now(), params.maxWidth),
    // The lines are cut to the terminal's width instead of switching its wrapping off (a kill would leave it off).
    linewrap: true,
    hideCursor: false,
    fps: 10,
  });
  const listener: ProgressListener = (event) => {
    const done = event.phase === 'testing' ? event.seconds : event.bytes;
    const now = Date.now();
    const shown = lines.get(event.phase);
    if (shown === undefined) {
      // Nothing to do (no app to copy, nothing left of the rootfs): no empty bar.
      if (event.total <= 0) return;
      const line = new PhaseLine(event.phase);
      line.update(done, event.total, now);
      lines.set(event.phase, { line, bar: bars.create(event.total, done, { line }) });
      return;
    }
    shown.line.update(done, event.total, now);
    shown.bar.setTotal(Math.max(1, shown.line.total));
    shown.bar.update(shown.line.done);
  };
  let stopped = false;
  return {
    listener,
    stop: () => {
      if (stopped || lines.size === 0) return;
      stopped = true;
      bars.stop();
    },
  };
}
