// Live charts of one model, from the server's own /metrics scraped every two seconds: every
// version side by side (so a canary is read against production), as rates and quantiles
// between consecutive scrapes.

import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { send } from "../api";
import { mean, parse, quantile, rate, Scrape } from "../prom";
import { asApiError, ErrorBox } from "../ui";
import type { ModelData } from "./model";
import type { ApiError } from "../api";

const INTERVAL_MS = 2000;
const KEEP = 90;
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

type Derive = (before: Scrape, after: Scrape, match: Record<string, string>) => number | null;

interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  kinds: string[];
  /** One line per version per entry. */
  lines: { suffix: string; derive: Derive; dash?: number[] }[];
}

const ms = (v: number | null) => (v === null ? null : v * 1000);
const success = (s: { labels: Record<string, string> }) => s.labels.outcome === "success";
const failure = (s: { labels: Record<string, string> }) => s.labels.outcome !== "success";

const CHARTS: ChartSpec[] = [
  {
    id: "requests",
    title: "Requests per second",
    unit: "req/s",
    kinds: ["tensor", "language", "embedding"],
    lines: [{ suffix: "", derive: (a, b, m) => rate(a, b, "modelbay_requests_total", m, success) }],
  },
  {
    id: "errors",
    title: "Errors per second",
    unit: "req/s",
    kinds: ["tensor", "language", "embedding"],
    lines: [{ suffix: "", derive: (a, b, m) => rate(a, b, "modelbay_requests_total", m, failure) }],
  },
  {
    id: "latency",
    title: "Latency p50 / p99",
    unit: "ms",
    kinds: ["tensor", "language", "embedding"],
    lines: [
      { suffix: " p50", derive: (a, b, m) => ms(quantile(0.5, a, b, "modelbay_request_duration_seconds", m)) },
      { suffix: " p99", derive: (a, b, m) => ms(quantile(0.99, a, b, "modelbay_request_duration_seconds", m)), dash: [6, 4] },
    ],
  },
  {
    id: "queue",
    title: "Queue vs compute (mean)",
    unit: "ms",
    kinds: ["tensor", "embedding"],
    lines: [
      { suffix: " queue", derive: (a, b, m) => ms(mean(a, b, "modelbay_queue_duration_seconds", m)), dash: [6, 4] },
      { suffix: " compute", derive: (a, b, m) => ms(mean(a, b, "modelbay_compute_duration_seconds", m)) },
    ],
  },
  {
    id: "batch",
    title: "Batch size (mean)",
    unit: "rows",
    kinds: ["tensor", "embedding"],
    lines: [{ suffix: "", derive: (a, b, m) => mean(a, b, "modelbay_batch_size", m) }],
  },
  {
    id: "tokens",
    title: "Generated tokens per second",
    unit: "tok/s",
    kinds: ["language"],
    lines: [{ suffix: "", derive: (a, b, m) => rate(a, b, "modelbay_llm_generated_tokens_total", m) }],
  },
  {
    id: "ttft",
    title: "Time to first token p50 / p99",
    unit: "ms",
    kinds: ["language"],
    lines: [
      { suffix: " p50", derive: (a, b, m) => ms(quantile(0.5, a, b, "modelbay_llm_time_to_first_token_seconds", m)) },
      { suffix: " p99", derive: (a, b, m) => ms(quantile(0.99, a, b, "modelbay_llm_time_to_first_token_seconds", m)), dash: [6, 4] },
    ],
  },
];

/** Scrapes /metrics on a timer and keeps the last scrapes. */
function useScrapes(): { scrapes: Scrape[]; error: ApiError | null } {
  const [scrapes, setScrapes] = useState<Scrape[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let live = true;
    const scrape = async () => {
      try {
        const text = await (await send("GET", "/metrics")).text();
        if (!live) return;
        setError(null);
        setScrapes((s) => [...s.slice(-(KEEP - 1)), new Scrape(Date.now(), parse(text))]);
      } catch (e) {
        if (live) setError(asApiError(e));
      }
    };
    scrape();
    const timer = setInterval(scrape, INTERVAL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  return { scrapes, error };
}

function Chart({ spec, model, scrapes, labels }: { spec: ChartSpec; model: string; scrapes: Scrape[]; labels: Record<string, string> }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const last = scrapes[scrapes.length - 1];
  const versions = last ? last.versions(model) : [];
  const key = versions.join(",");
  const xs = scrapes.slice(1).map((s) => s.at / 1000);
  const series: (number | null)[][] = [];
  for (const version of versions) {
    for (const line of spec.lines) {
      const match = { model, version };
      series.push(scrapes.slice(1).map((s, i) => line.derive(scrapes[i], s, match)));
    }
  }
  const data = [xs, ...series] as uPlot.AlignedData;
  const latest = series.map((s) => s[s.length - 1] ?? 0).reduce((a, b) => a + (b ?? 0), 0);

  useEffect(() => {
    if (!box.current) return;
    const lines: uPlot.Series[] = [{}];
    versions.forEach((version, i) => {
      for (const line of spec.lines) {
        lines.push({
          label: `v${version}${labels[version] ? ` (${labels[version]})` : ""}${line.suffix}`,
          stroke: COLOURS[i % COLOURS.length],
          dash: line.dash,
          width: 2,
          spanGaps: true,
          value: (_u, v) => (v === null || v === undefined ? "—" : `${Number(v.toPrecision(3))} ${spec.unit}`),
        });
      }
    });
    plot.current = new uPlot(
      {
        width: 460,
        height: 200,
        series: lines,
        axes: [{}, { label: spec.unit, size: 60 }],
        // The window the scrapes cover, even while only a few points exist.
        scales: { x: { time: true, range: (_u, _min, max) => [max - (KEEP * INTERVAL_MS) / 1000, max] } },
      },
      data,
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [key, spec.id]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return html`<figure class="chart" data-testid=${`chart-${spec.id}`} data-points=${xs.length} data-latest=${latest}>
    <figcaption>${spec.title}</figcaption>
    <div ref=${box}></div>
    ${versions.length === 0 && html`<p class="muted">No samples for this model yet.</p>`}
  </figure>`;
}

export function ChartsTab({ model }: { model: ModelData }) {
  const { scrapes, error } = useScrapes();
  const labels: Record<string, string> = {};
  for (const v of model.versions) if (v.aliases.length) labels[String(v.version)] = v.aliases.join(", ");
  return html`<div>
    <p class="muted">
      From <code>/metrics</code> every ${INTERVAL_MS / 1000} s; each point is the interval since the previous scrape.
      ${scrapes.length < 2 ? " The first point appears after the second scrape." : ""}
    </p>
    <${ErrorBox} error=${error} />
    <div class="charts">
      ${CHARTS.filter((c) => c.kinds.includes(model.kind)).map(
        (spec) => html`<${Chart} spec=${spec} model=${model.name} scrapes=${scrapes} labels=${labels} />`,
      )}
    </div>
  </div>`;
}
