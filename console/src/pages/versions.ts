// The versions tab: versions with aliases and labels, promote and roll back (each confirmed),
// the traffic split, the audit trail and the model's serving settings.

import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { allows, enc, getJson, sendJson, type Whoami } from "../api";
import { bytes, ConfirmButton, shortDigest, Show, useLoad, when } from "../ui";
import type { ModelData } from "./model";
import { RoutingPanel } from "./routing";
import { AuditPanel } from "./audit";
import { SettingsPanel } from "./settings";

export interface AliasRecord {
  alias: string;
  version: number;
  updated_at: string;
  history: number[];
}

function PromoteForm({ model, onChange }: { model: ModelData; onChange: () => void }) {
  const live = model.versions.filter((v) => !v.archived);
  const [version, setVersion] = useState(String(live[live.length - 1]?.version ?? ""));
  const [alias, setAlias] = useState("production");
  return html`<div class="form-row" data-testid="promote">
    <label>Version
      <select name="promote-version" value=${version} onChange=${(e: any) => setVersion(e.target.value)}>
        ${live.map((v) => html`<option value=${v.version}>${v.version}</option>`)}
      </select>
    </label>
    <label>Alias <input name="promote-alias" value=${alias} onInput=${(e: any) => setAlias(e.target.value)} /></label>
    <${ConfirmButton}
      label="Promote"
      question=${`Point ${alias} of ${model.name} at version ${version}? It is loaded and warmed up first.`}
      disabled=${!version || !alias}
      action=${async () => {
        await sendJson("PUT", `/api/v1/models/${enc(model.name)}/aliases/${enc(alias)}`, { version: Number(version) });
        onChange();
      }}
    />
  </div>`;
}

function AliasesPanel({ me, model, onChange }: { me: Whoami; model: ModelData; onChange: () => void }) {
  const aliases = useLoad(
    () => getJson<{ aliases: AliasRecord[] }>(`/api/v1/models/${enc(model.name)}/aliases`),
    [model],
  );
  const publish = allows(me.role, "publish");
  return html`<div class="panel">
    <h2>Aliases</h2>
    <${Show} loaded=${aliases}>
      ${({ aliases: list }: { aliases: AliasRecord[] }) => html`<table data-testid="aliases">
        <thead><tr><th>Alias</th><th>Version</th><th>Earlier versions</th><th>Moved at</th><th></th></tr></thead>
        <tbody>
          ${list.map(
            (a) => html`<tr data-alias=${a.alias}>
              <td><span class="tag">${a.alias}</span></td>
              <td class="alias-version">${a.version}</td>
              <td>${a.history.join(" ← ") || "—"}</td>
              <td>${when(a.updated_at)}</td>
              <td>
                ${publish &&
                html`<${ConfirmButton}
                  label="Roll back"
                  question=${`Move ${a.alias} back to version ${a.history[0]}?`}
                  disabled=${a.history.length === 0}
                  action=${async () => {
                    await sendJson("POST", `/api/v1/models/${enc(model.name)}/aliases/${enc(a.alias)}/rollback`);
                    onChange();
                  }}
                />`}
              </td>
            </tr>`,
          )}
        </tbody>
      </table>`}
    <//>
    ${publish && html`<${PromoteForm} model=${model} onChange=${onChange} />`}
  </div>`;
}

function labels(map: Record<string, string>) {
  return Object.entries(map).map(([k, v]) => html`<span class="label">${k}=${v}</span>`);
}

export function VersionsTab({ me, model, onChange }: { me: Whoami; model: ModelData; onChange: () => void }) {
  const inspect = allows(me.role, "inspect");
  return html`<div>
    <div class="panel">
      <h2>Versions <span class="muted">(${model.kind} model)</span></h2>
      <table data-testid="versions">
        <thead>
          <tr><th>Version</th><th>Aliases</th><th>Labels</th><th>Description</th><th>Digest</th><th>Size</th><th>Pushed</th></tr>
        </thead>
        <tbody>
          ${model.versions
            .slice()
            .reverse()
            .map(
              (v) => html`<tr data-version=${v.version} class=${v.archived ? "archived" : ""}>
                <td>${v.version}${v.archived ? html` <span class="state archived">archived</span>` : ""}</td>
                <td>${v.aliases.map((a) => html`<span class="tag">${a}</span>`)}</td>
                <td>${labels(v.labels)}</td>
                <td>${v.description}</td>
                <td><code title=${v.digest}>${shortDigest(v.digest)}</code></td>
                <td>${bytes(v.size)}</td>
                <td>${v.created_by}, ${when(v.created_at)}</td>
              </tr>`,
            )}
        </tbody>
      </table>
    </div>
    ${inspect && html`<${AliasesPanel} me=${me} model=${model} onChange=${onChange} />`}
    ${inspect && html`<${RoutingPanel} me=${me} model=${model} onChange=${onChange} />`}
    ${inspect && html`<${SettingsPanel} me=${me} model=${model} />`}
    ${inspect && html`<${AuditPanel} model=${model} />`}
  </div>`;
}
