// The traffic split: the stored policy, an editor for its arms, sticky header and shadow
// target, and a probe that sends requests down the default route and counts which version
// answered, so a change is seen taking effect.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { allows, enc, getJson, send, sendJson, type Whoami } from "../api";
import { asApiError, ConfirmButton, ErrorBox, fmt, Show, useLoad } from "../ui";
import type { ModelData } from "./model";
import { exampleRequest } from "./tensors";
import type { ApiError } from "../api";

interface Arm {
  target: string;
  weight: number;
}

interface Policy {
  split: Arm[];
  sticky_header?: string;
  shadow?: string;
}

function Probe({ model }: { model: ModelData }) {
  const [counts, setCounts] = useState<Record<string, number> | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [runs, setRuns] = useState(0);
  const newest = model.versions.filter((v) => !v.archived).pop();
  if (!newest || model.kind !== "tensor") return null;
  const run = async () => {
    setBusy(true);
    setError(null);
    const tally: Record<string, number> = {};
    try {
      const body = exampleRequest(newest.signature);
      for (let i = 0; i < 20; i++) {
        const response = await send("POST", `/v2/models/${enc(model.name)}/infer`, body);
        const version = response.headers.get("x-modelbay-model-version") ?? "?";
        tally[version] = (tally[version] ?? 0) + 1;
        await response.body?.cancel();
      }
      setCounts(tally);
      setRuns((n) => n + 1);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="probe" data-testid="probe">
    <button onClick=${run} disabled=${busy}>${busy ? "Sending…" : "Send 20 test requests"}</button>
    <span class="muted">down the default route (they count in the metrics and the drift window)</span>
    ${counts &&
    html`<span class="served" data-testid="served" data-run=${runs}>
      answered by ${Object.entries(counts)
        .sort()
        .map(([v, n]) => html`<span class="tag" data-served-version=${v}>v${v}: ${n}</span>`)}
    </span>`}
    <${ErrorBox} error=${error} />
  </div>`;
}

function Editor({ model, policy, onSaved }: { model: ModelData; policy: Policy | null; onSaved: () => void }) {
  const initial: Policy = policy ?? { split: [{ target: "production", weight: 100 }] };
  const [arms, setArms] = useState<Arm[]>(initial.split);
  const [sticky, setSticky] = useState(initial.sticky_header ?? "");
  const [shadow, setShadow] = useState(initial.shadow ?? "");
  useEffect(() => {
    setArms(initial.split);
    setSticky(initial.sticky_header ?? "");
    setShadow(initial.shadow ?? "");
  }, [policy]);
  const total = arms.reduce((s, a) => s + (Number(a.weight) || 0), 0);
  const update = (i: number, change: Partial<Arm>) => setArms(arms.map((a, j) => (j === i ? { ...a, ...change } : a)));
  const body = (): Policy => {
    const p: Policy = { split: arms.map((a) => ({ target: a.target.trim(), weight: Number(a.weight) })) };
    if (sticky.trim()) p.sticky_header = sticky.trim();
    if (shadow.trim()) p.shadow = shadow.trim();
    return p;
  };
  const summary = arms.map((a) => `${a.target}=${a.weight}`).join(" ");
  return html`<div class="editor" data-testid="split-editor">
    <table>
      <thead><tr><th>Target (version or alias)</th><th>Weight</th><th>Share</th><th></th></tr></thead>
      <tbody>
        ${arms.map(
          (a, i) => html`<tr>
            <td><input name=${`target-${i}`} value=${a.target} onInput=${(e: any) => update(i, { target: e.target.value })} /></td>
            <td><input name=${`weight-${i}`} type="number" min="0" value=${a.weight} onInput=${(e: any) => update(i, { weight: e.target.value })} /></td>
            <td>${total > 0 ? `${((100 * (Number(a.weight) || 0)) / total).toFixed(0)}%` : "—"}</td>
            <td><button onClick=${() => setArms(arms.filter((_, j) => j !== i))} disabled=${arms.length === 1}>Remove</button></td>
          </tr>`,
        )}
      </tbody>
    </table>
    <div class="form-row">
      <button onClick=${() => setArms([...arms, { target: "", weight: 0 }])} disabled=${arms.length >= 16}>Add arm</button>
      <label>Sticky header <input name="sticky" placeholder="x-user-id" value=${sticky} onInput=${(e: any) => setSticky(e.target.value)} /></label>
      <label>Shadow target <input name="shadow" placeholder="version or alias" value=${shadow} onInput=${(e: any) => setShadow(e.target.value)} /></label>
      <${ConfirmButton}
        label="Save split"
        question=${`Route ${model.name} as ${summary}${shadow ? `, shadow ${shadow}` : ""}? Every target is loaded first.`}
        action=${async () => {
          await sendJson("PUT", `/api/v1/models/${enc(model.name)}/policy`, body());
          onSaved();
        }}
      />
    </div>
  </div>`;
}

export function RoutingPanel({ me, model, onChange }: { me: Whoami; model: ModelData; onChange: () => void }) {
  const policy = useLoad(
    () => getJson<{ policy: Policy | null }>(`/api/v1/models/${enc(model.name)}/policy`),
    [model],
  );
  const publish = allows(me.role, "publish");
  return html`<div class="panel">
    <h2>Traffic</h2>
    <${Show} loaded=${policy}>
      ${({ policy: p }: { policy: Policy | null }) => html`<div>
        <p data-testid="policy">
          ${p
            ? html`Split: ${p.split.map((a) => html`<span class="tag">${a.target} × ${a.weight}</span>`)}
                ${p.sticky_header && html` sticky on <code>${p.sticky_header}</code>`}
                ${p.shadow && html` · shadow <span class="tag">${p.shadow}</span>`}`
            : html`No split: unpinned requests go to the <span class="tag">production</span> alias.`}
        </p>
        ${publish && html`<${Editor} model=${model} policy=${p} onSaved=${onChange} />`}
        ${publish &&
        p &&
        html`<${ConfirmButton}
          label="Remove split"
          danger
          question=${`Remove the split of ${model.name}? Unpinned requests then go to production.`}
          action=${async () => {
            await send("DELETE", `/api/v1/models/${enc(model.name)}/policy`);
            onChange();
          }}
        />`}
        ${p?.shadow && html`<${ShadowReport} model=${model} />`}
      </div>`}
    <//>
    ${allows(me.role, "infer") && html`<${Probe} model=${model} />`}
  </div>`;
}

function ShadowReport({ model }: { model: ModelData }) {
  const report = useLoad(() => getJson(`/api/v1/models/${enc(model.name)}/shadow`), [model]);
  return html`<${Show} loaded=${report}>
    ${({ shadow }: any) =>
      shadow &&
      html`<div class="shadow" data-testid="shadow" data-requests=${shadow.requests}>
        <h3>Shadow report <button onClick=${report.reload}>Refresh</button></h3>
        <p>
          ${`${shadow.requests} requests copied to ${shadow.target}, ${shadow.errors} errors; mean latency `}
          ${`${fmt(shadow.primary_mean_latency_ms)} ms (primary) vs ${fmt(shadow.shadow_mean_latency_ms)} ms (shadow)`}
        </p>
        <table>
          <thead><tr><th>Output</th><th>Agreement</th><th>Mean max |diff|</th></tr></thead>
          <tbody>
            ${Object.entries(shadow.outputs ?? {}).map(
              ([name, o]: [string, any]) => html`<tr>
                <td>${name}</td><td>${(100 * o.agreement_rate).toFixed(1)}% of ${o.compared}</td>
                <td>${o.mean_max_abs_diff ?? "—"}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>`}
  <//>`;
}
