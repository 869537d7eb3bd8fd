// The Prometheus text format, read in the browser: /metrics is scraped every few seconds and
// each chart is a rate or a quantile between two scrapes, per model version.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const space = brace >= 0 ? line.indexOf(" ", line.lastIndexOf("}")) : line.indexOf(" ");
    if (space < 0) continue;
    const name = line.slice(0, brace >= 0 ? brace : space);
    const labels: Record<string, string> = {};
    if (brace >= 0) {
      const body = line.slice(brace + 1, line.lastIndexOf("}"));
      for (const m of body.matchAll(LABEL)) {
        labels[m[1]] = m[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      }
    }
    const value = Number(line.slice(space + 1).trim().split(" ")[0]);
    samples.push({ name, labels, value });
  }
  return samples;
}

/** One scrape, indexed for sums over the samples of one model version. */
export class Scrape {
  constructor(
    public at: number,
    public samples: Sample[],
  ) {}

  /** Sum of `name` over samples matching every label in `match` (and `filter`, if given). */
  sum(name: string, match: Record<string, string>, filter?: (s: Sample) => boolean): number {
    let total = 0;
    for (const s of this.samples) {
      if (s.name !== name) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      if (filter && !filter(s)) continue;
      total += s.value;
    }
    return total;
  }

  /** A histogram's cumulative buckets (by upper bound) summed over matching samples. */
  buckets(name: string, match: Record<string, string>): Map<number, number> {
    const out = new Map<number, number>();
    for (const s of this.samples) {
      if (s.name !== `${name}_bucket`) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      out.set(le, (out.get(le) ?? 0) + s.value);
    }
    return out;
  }

  /** Versions of `model` that any family mentions. */
  versions(model: string): string[] {
    const seen = new Set<string>();
    for (const s of this.samples) {
      if (s.labels.model === model && s.labels.version) seen.add(s.labels.version);
    }
    return [...seen].sort((a, b) => Number(a) - Number(b));
  }
}

/** Per-second rate of a counter between two scrapes (null when there is no earlier one). */
export function rate(
  before: Scrape,
  after: Scrape,
  name: string,
  match: Record<string, string>,
  filter?: (s: Sample) => boolean,
): number {
  const dt = (after.at - before.at) / 1000;
  const d = after.sum(name, match, filter) - before.sum(name, match, filter);
  return dt > 0 ? Math.max(0, d) / dt : 0;
}

/** Mean of a histogram's observations between two scrapes; null when nothing was observed. */
export function mean(before: Scrape, after: Scrape, name: string, match: Record<string, string>) {
  const count = after.sum(`${name}_count`, match) - before.sum(`${name}_count`, match);
  if (count <= 0) return null;
  return (after.sum(`${name}_sum`, match) - before.sum(`${name}_sum`, match)) / count;
}

/**
 * A quantile of a histogram's observations between two scrapes, interpolated linearly inside
 * the bucket it falls in (as PromQL's histogram_quantile does); null when nothing was observed.
 */
export function quantile(
  q: number,
  before: Scrape,
  after: Scrape,
  name: string,
  match: Record<string, string>,
): number | null {
  const a = before.buckets(name, match);
  const b = after.buckets(name, match);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const counts = bounds.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i] >= rank) {
      const upper = bounds[i];
      if (upper === Infinity) return lower;
      const inBucket = counts[i] - below;
      return inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
    }
    lower = bounds[i];
    below = counts[i];
  }
  return lower;
}
