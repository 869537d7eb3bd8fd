// Drift of live inputs per feature (flagged ones highlighted) and the explanation of one row
// as a bar chart of its attributions, for a version of a tabular model.

import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { allows, enc, getJson, sendJson, type Whoami } from "../api";
import { asApiError, ErrorBox, fmt, Show, useLoad } from "../ui";
import type { ModelData } from "./model";
import type { VersionRecord } from "./models";
import { inferRequest, rowWidth } from "./tensors";
import type { ApiError } from "../api";

function DriftTable({ model, version }: { model: ModelData; version: number }) {
  const drift = useLoad(() => getJson(`/api/v1/models/${enc(model.name)}/versions/${version}/drift`), [model, version]);
  return html`<div class="panel">
    <h2>Drift <button onClick=${drift.reload}>Refresh</button></h2>
    <${Show} loaded=${drift}>
      ${(d: any) => html`<div>
        <p class="muted">
          ${`${d.observed_rows} of ${d.window_rows} window rows observed (${d.total_rows} since the window ` +
          `started, ${d.skipped_rows} skipped). A feature is flagged when its PSI is above ${d.threshold} ` +
          `with at least ${d.min_rows} rows.`}
        </p>
        <table data-testid="drift">
          <thead><tr><th>Feature</th><th>PSI</th><th></th><th>Reference mean</th><th>Live mean</th></tr></thead>
          <tbody>
            ${d.features.map(
              (f: any) => html`<tr class=${f.drifted ? "drifted" : ""} data-feature=${f.name} data-drifted=${String(f.drifted)}>
                <td>${f.name}${f.drifted ? html` <span class="state drifted">drifted</span>` : ""}</td>
                <td>${fmt(f.psi)}</td>
                <td><span class="bar" style=${{ width: `${Math.min(100, (100 * (f.psi ?? 0)) / 0.5)}px` }}></span></td>
                <td>${fmt(f.reference_mean, 4)}</td>
                <td>${fmt(f.live_mean, 4)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>`}
    <//>
  </div>`;
}

function Bars({ features, attributions }: { features: string[]; attributions: number[] }) {
  const order = features.map((_, i) => i).sort((a, b) => Math.abs(attributions[b]) - Math.abs(attributions[a]));
  const top = order.slice(0, 20);
  const max = Math.max(1e-12, ...top.map((i) => Math.abs(attributions[i])));
  const rowHeight = 22;
  const half = 180;
  return html`<svg class="bars" data-testid="attributions" width=${200 + 2 * half + 80} height=${top.length * rowHeight + 10} role="img">
    <line x1=${200 + half} x2=${200 + half} y1="0" y2=${top.length * rowHeight} stroke="#888" />
    ${top.map((i, row) => {
      const a = attributions[i];
      const w = (half * Math.abs(a)) / max;
      const y = row * rowHeight + 3;
      return html`<g data-feature=${features[i]}>
        <text x="195" y=${y + 13} text-anchor="end">${features[i]}</text>
        <rect x=${a >= 0 ? 200 + half : 200 + half - w} y=${y} width=${Math.max(1, w)} height=${rowHeight - 6} fill=${a >= 0 ? "#dc2626" : "#2563eb"} />
        <text x=${a >= 0 ? 200 + half + w + 4 : 200 + half + 4} y=${y + 13}>${fmt(a)}</text>
      </g>`;
    })}
  </svg>`;
}

function Explain({ model, version }: { model: ModelData; version: VersionRecord }) {
  const reference = useLoad(() => getJson(`/api/v1/models/${enc(model.name)}/versions/${version.version}/reference`), [model, version.version]);
  const [values, setValues] = useState<Record<string, string[]>>({});
  const [result, setResult] = useState<any>(null);
  const [output, setOutput] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const names: string[] = reference.data?.features ?? [];
  let column = 0;
  const fields = version.signature.inputs.flatMap((spec) =>
    Array.from({ length: rowWidth(spec) }, (_, j) => {
      const label = names[column++] ?? `${spec.name}[${j}]`;
      return html`<label class="field">${label}
        <input name=${`x-${label}`} value=${values[spec.name]?.[j] ?? ""} placeholder="0"
          onInput=${(e: any) => {
            const row = [...(values[spec.name] ?? [])];
            row[j] = e.target.value;
            setValues({ ...values, [spec.name]: row });
          }} />
      </label>`;
    }),
  );
  const explain = async () => {
    setBusy(true);
    setError(null);
    try {
      const body = inferRequest(version.signature, values);
      setResult(await sendJson("POST", `/v2/models/${enc(model.name)}/versions/${version.version}/explain`, body));
      setOutput(0);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  if (reference.error) return html`<div class="panel"><h2>Explain</h2><${ErrorBox} error=${reference.error} /></div>`;
  const outputs = result?.rows?.[0]?.outputs ?? [];
  const chosen = outputs[output];
  return html`<div class="panel">
    <h2>Explain one row</h2>
    <div class="fields">${fields}</div>
    <button class="primary" onClick=${explain} disabled=${busy}>${busy ? "Explaining…" : "Explain"}</button>
    <${ErrorBox} error=${error} />
    ${chosen &&
    html`<div data-testid="explanation">
      <label>Output
        <select value=${output} onChange=${(e: any) => setOutput(Number(e.target.value))}>
          ${outputs.map((o: any, i: number) => html`<option value=${i}>${o.output}[${o.index}]</option>`)}
        </select>
      </label>
      <p>${`value ${fmt(chosen.value, 4)} = base ${fmt(chosen.base_value, 4)} + Σ attributions `}<span class="muted">(KernelSHAP, ${result.coalitions} coalitions${result.exact ? ", exact" : ""}, ${result.background_rows} background rows)</span></p>
      <${Bars} features=${result.features} attributions=${chosen.attributions} />
    </div>`}
  </div>`;
}

export function DriftTab({ me, model }: { me: Whoami; model: ModelData }) {
  const live = model.versions.filter((v) => !v.archived);
  const [version, setVersion] = useState(live.find((v) => v.aliases.includes("production"))?.version ?? live[live.length - 1]?.version);
  if (model.kind !== "tensor") return html`<p class="muted">Drift and explanations are for tabular tensor models.</p>`;
  const record = live.find((v) => v.version === version);
  return html`<div>
    <label>Version
      <select name="drift-version" value=${version} onChange=${(e: any) => setVersion(Number(e.target.value))}>
        ${live.map((v) => html`<option value=${v.version}>${v.version}${v.aliases.length ? ` (${v.aliases.join(", ")})` : ""}</option>`)}
      </select>
    </label>
    ${version !== undefined && html`<${DriftTable} model=${model} version=${version} />`}
    ${record && allows(me.role, "infer") && html`<${Explain} model=${model} version=${record} />`}
  </div>`;
}
