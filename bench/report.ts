/**
 * How the benches print a figure: the median of ferry's runs against the median of its baseline's (or floor's), as
 * a ratio, with the spread of the runs beside it.
 */

export interface Sample {
  seconds: number;
  /** Peak RSS in KiB, where it was measured (0 where not). */
  maxRssKb: number;
}

export function median(samples: Sample[]): Sample {
  const pick = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return { seconds: pick(samples.map((s) => s.seconds)), maxRssKb: pick(samples.map((s) => s.maxRssKb)) };
}

/**
 * The median of each side and their ratio; the spread of the runs beside it, since this machine is noisy. The RSS
 * line is left out when `rss` is false (a figure whose peak RSS was not measured); `against` names the other side
 * (`baseline` unless told).
 */
export function report(
  name: string,
  baselineName: string,
  ferryRuns: Sample[],
  baselineRuns: Sample[],
  options: { readonly rss?: boolean; readonly against?: string } = {},
): void {
  const against = options.against ?? 'baseline';
  const [ferry, baseline] = [median(ferryRuns), median(baselineRuns)];
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  const spread = (runs: Sample[]) => {
    const seconds = runs.map((sample) => sample.seconds);
    return `${Math.min(...seconds).toFixed(2)}–${Math.max(...seconds).toFixed(2)}`;
  };
  console.log(
    `${name.padEnd(8)} time  ${ratio(ferry.seconds, baseline.seconds).padStart(6)}x  (ferry ${ferry.seconds.toFixed(2)} s [${spread(ferryRuns)}], ${against} ${baseline.seconds.toFixed(2)} s [${spread(baselineRuns)}]: ${baselineName})`,
  );
  if (options.rss === false) return;
  console.log(
    `${''.padEnd(8)} RSS   ${ratio(ferry.maxRssKb, baseline.maxRssKb).padStart(6)}x  (ferry peak ${(ferry.maxRssKb / 1024).toFixed(0)} MiB, baseline ${(baseline.maxRssKb / 1024).toFixed(0)} MiB)`,
  );
}
