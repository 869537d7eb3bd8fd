// API keys (admin only): create one (its secret shown once), list them, revoke.

import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { enc, getJson, send, sendJson, type Whoami } from "../api";
import { asApiError, ConfirmButton, ErrorBox, Show, useLoad, when } from "../ui";
import type { ApiError } from "../api";

interface ApiKey {
  id: string;
  label: string;
  role: string;
  models: string[];
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
}

function CreateKey({ onCreated }: { onCreated: () => void }) {
  const [label, setLabel] = useState("");
  const [role, setRole] = useState("consumer");
  const [models, setModels] = useState("");
  const [expires, setExpires] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setSecret(null);
    const body: Record<string, unknown> = { label: label.trim(), role };
    const patterns = models.split(",").map((m) => m.trim()).filter(Boolean);
    if (patterns.length) body.models = patterns;
    if (expires.trim()) body.expires_in = expires.trim();
    try {
      const created = await sendJson("POST", "/api/v1/keys", body);
      setSecret(created.secret);
      setLabel("");
      onCreated();
    } catch (err) {
      setError(asApiError(err));
    }
  };
  return html`<div class="panel">
    <h2>Create a key</h2>
    <form class="form-row" onSubmit=${create} data-testid="create-key">
      <label>Label <input name="label" value=${label} onInput=${(e: any) => setLabel(e.target.value)} /></label>
      <label>Role
        <select name="role" value=${role} onChange=${(e: any) => setRole(e.target.value)}>
          ${["admin", "publisher", "consumer", "viewer"].map((r) => html`<option value=${r}>${r}</option>`)}
        </select>
      </label>
      <label>Models <input name="models" placeholder="credit-*, chat (optional)" value=${models} onInput=${(e: any) => setModels(e.target.value)} /></label>
      <label>Expires in <input name="expires" placeholder="30d (optional)" value=${expires} onInput=${(e: any) => setExpires(e.target.value)} /></label>
      <button class="primary" type="submit" disabled=${!label.trim()}>Create</button>
    </form>
    <${ErrorBox} error=${error} />
    ${secret &&
    html`<div class="secret" role="status">
      <p>The key's secret, shown this once: copy it now.</p>
      <code data-testid="secret">${secret}</code>
      <button onClick=${() => navigator.clipboard?.writeText(secret)}>Copy</button>
      <button onClick=${() => setSecret(null)}>Done</button>
    </div>`}
  </div>`;
}

export function KeysPage({ me }: { me: Whoami }) {
  const keys = useLoad(() => getJson<{ keys: ApiKey[] }>("/api/v1/keys"), []);
  return html`<section>
    <h1>API keys</h1>
    <${CreateKey} onCreated=${keys.reload} />
    <div class="panel">
      <h2>Keys</h2>
      <${Show} loaded=${keys}>
        ${({ keys: list }: { keys: ApiKey[] }) => html`<table data-testid="keys">
          <thead><tr><th>Id</th><th>Label</th><th>Role</th><th>Models</th><th>Created</th><th>Expires</th><th>State</th><th></th></tr></thead>
          <tbody>
            ${list.map((k) => {
              const expired = k.expires_at !== null && new Date(k.expires_at) < new Date();
              return html`<tr data-key=${k.id} data-label=${k.label}>
                <td><code>${k.id}</code></td>
                <td>${k.label}</td>
                <td>${k.role}</td>
                <td>${k.models.join(", ") || "every model"}</td>
                <td>${k.created_by}, ${when(k.created_at)}</td>
                <td>${when(k.expires_at)}</td>
                <td>${k.revoked_at ? html`<span class="state archived">revoked</span>` : expired ? html`<span class="state archived">expired</span>` : html`<span class="state ready">active</span>`}</td>
                <td>
                  ${!k.revoked_at &&
                  html`<${ConfirmButton}
                    label="Revoke"
                    danger
                    question=${`Revoke ${k.label}? Requests with it fail at once.${k.id === me.key_id ? " This is the key you are logged in with." : ""}`}
                    action=${async () => {
                      await send("DELETE", `/api/v1/keys/${enc(k.id)}`);
                      keys.reload();
                    }}
                  />`}
                </td>
              </tr>`;
            })}
          </tbody>
        </table>`}
      <//>
    </div>
  </section>`;
}
