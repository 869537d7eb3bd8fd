// Serving settings: dynamic batching of tensor models, generation defaults of language-model
// versions. Shown to every inspecting key, editable with publish.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { allows, enc, getJson, sendJson, type Whoami } from "../api";
import { asApiError, ErrorBox, Show, useLoad } from "../ui";
import type { ModelData } from "./model";
import type { ApiError } from "../api";

function SaveButton({ save }: { save: () => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  return html`<span>
    <button
      class="primary"
      disabled=${busy}
      onClick=${async () => {
        setBusy(true);
        setError(null);
        setSaved(false);
        try {
          await save();
          setSaved(true);
        } catch (e) {
          setError(asApiError(e));
        } finally {
          setBusy(false);
        }
      }}
    >Save</button>
    ${saved && html`<span class="ok">Saved</span>`}
    <${ErrorBox} error=${error} />
  </span>`;
}

function Batching({ model, publish }: { model: ModelData; publish: boolean }) {
  const status = useLoad(() => getJson(`/api/v1/models/${enc(model.name)}/batching`), [model]);
  const [form, setForm] = useState({ max: "0", delay: "0", preferred: "" });
  useEffect(() => {
    const s = status.data?.settings;
    if (s)
      setForm({
        max: String(s.max_batch_size ?? 0),
        delay: String(s.max_queue_delay_microseconds ?? 0),
        preferred: (s.preferred_batch_sizes ?? []).join(", "),
      });
  }, [status.data]);
  return html`<div>
    <h3>Dynamic batching</h3>
    <${Show} loaded=${status}>
      ${(s: any) => html`<div>
        <p class="muted">
          ${s.loaded.length === 0
            ? "No version loaded."
            : s.loaded.map((l: any) => html`<span class="tag">v${l.version}: ${l.batching ? "merging requests" : l.reason ?? "not batching"}</span>`)}
        </p>
        <div class="form-row" data-testid="batching">
          <label>Max batch size <input type="number" min="0" disabled=${!publish} value=${form.max} onInput=${(e: any) => setForm({ ...form, max: e.target.value })} /></label>
          <label>Max queue delay (µs) <input type="number" min="0" disabled=${!publish} value=${form.delay} onInput=${(e: any) => setForm({ ...form, delay: e.target.value })} /></label>
          <label>Preferred sizes <input disabled=${!publish} placeholder="8, 16" value=${form.preferred} onInput=${(e: any) => setForm({ ...form, preferred: e.target.value })} /></label>
          ${publish &&
          html`<${SaveButton}
            save=${async () => {
              const preferred = form.preferred.split(",").map((x) => x.trim()).filter(Boolean).map(Number);
              await sendJson("PUT", `/api/v1/models/${enc(model.name)}/batching`, {
                max_batch_size: Number(form.max),
                max_queue_delay_microseconds: Number(form.delay),
                preferred_batch_sizes: preferred,
              });
              status.reload();
            }}
          />`}
        </div>
      </div>`}
    <//>
  </div>`;
}

const GENERATION_FIELDS = [
  "temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "repeat_last_n",
  "presence_penalty", "frequency_penalty", "max_tokens", "tool_format",
];

function Generation({ model, publish }: { model: ModelData; publish: boolean }) {
  const live = model.versions.filter((v) => !v.archived);
  const [version, setVersion] = useState(live[live.length - 1]?.version ?? 1);
  const settings = useLoad(
    () => getJson(`/api/v1/models/${enc(model.name)}/versions/${version}/generation`),
    [model, version],
  );
  const [mine, setMine] = useState<Record<string, string>>({});
  useEffect(() => {
    const p = settings.data?.publisher ?? {};
    setMine(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)])));
  }, [settings.data]);
  const body = () =>
    Object.fromEntries(
      Object.entries(mine)
        .filter(([, v]) => v.trim() !== "")
        .map(([k, v]) => [k, k === "tool_format" ? v.trim() : Number(v)]),
    );
  return html`<div>
    <h3>Generation defaults
      <select value=${version} onChange=${(e: any) => setVersion(Number(e.target.value))}>
        ${live.map((v) => html`<option value=${v.version}>version ${v.version}</option>`)}
      </select>
    </h3>
    <${Show} loaded=${settings}>
      ${(s: any) => html`<table data-testid="generation">
        <thead><tr><th>Parameter</th><th>File recommends</th><th>Publisher set</th><th>A request gets</th></tr></thead>
        <tbody>
          ${GENERATION_FIELDS.map(
            (f) => html`<tr>
              <td>${f}</td>
              <td>${s.file?.[f] ?? "—"}</td>
              <td>${publish
                ? html`<input name=${`gen-${f}`} value=${mine[f] ?? ""} onInput=${(e: any) => setMine({ ...mine, [f]: e.target.value })} />`
                : (s.publisher?.[f] ?? "—")}</td>
              <td>${s.effective?.[f] ?? "—"}</td>
            </tr>`,
          )}
        </tbody>
      </table>`}
    <//>
    ${publish &&
    html`<${SaveButton}
      save=${async () => {
        await sendJson("PUT", `/api/v1/models/${enc(model.name)}/versions/${version}/generation`, body());
        settings.reload();
      }}
    />`}
  </div>`;
}

export function SettingsPanel({ me, model }: { me: Whoami; model: ModelData }) {
  const publish = allows(me.role, "publish");
  if (model.kind === "tensor") return html`<div class="panel"><${Batching} model=${model} publish=${publish} /></div>`;
  if (model.kind === "language") return html`<div class="panel"><${Generation} model=${model} publish=${publish} /></div>`;
  return html`<div class="panel">
    <h3>Batching</h3>
    <p class="muted">Embedding models are batched across requests by the server's <code>--embed-*</code> settings.</p>
  </div>`;
}
