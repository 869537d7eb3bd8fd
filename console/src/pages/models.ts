// Every model: kind, versions with digest, size, who pushed them and when, aliases, and whether
// each version is loaded and ready (per replica when the key may read the cluster view).

import { html } from "htm/preact";
import { allows, enc, getJson, type Whoami } from "../api";
import { bytes, kindOf, shortDigest, Show, useLoad, when } from "../ui";

export interface VersionRecord {
  model: string;
  version: number;
  digest: string;
  size: number;
  format: string;
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[] };
  details: Record<string, unknown>;
  description: string;
  labels: Record<string, string>;
  created_at: string;
  created_by: string;
  archived: boolean;
  aliases: string[];
}

export interface TensorSpec {
  name: string;
  datatype: string;
  shape: number[];
}

interface Replica {
  id: string;
  address: string;
  state: string;
  loaded: { model: string; version: number; kind: string }[];
}

interface Overview {
  models: { name: string; versions: VersionRecord[]; ready: Record<number, boolean> }[];
  replicas: Replica[] | null;
}

async function readiness(name: string, versions: VersionRecord[]) {
  const ready: Record<number, boolean> = {};
  await Promise.all(
    versions
      .filter((v) => !v.archived)
      .map(async (v) => {
        try {
          const r = await getJson(`/v2/models/${enc(name)}/versions/${v.version}/ready`);
          ready[v.version] = r.ready === true;
        } catch {
          ready[v.version] = false;
        }
      }),
  );
  return ready;
}

async function overview(me: Whoami): Promise<Overview> {
  const { models } = await getJson<{ models: { name: string }[] }>("/api/v1/models");
  const withVersions = await Promise.all(
    models.map(async ({ name }) => {
      const { versions } = await getJson<{ versions: VersionRecord[] }>(
        `/api/v1/models/${enc(name)}/versions`,
      );
      return { name, versions, ready: await readiness(name, versions) };
    }),
  );
  let replicas: Replica[] | null = null;
  if (allows(me.role, "inspect")) {
    replicas = (await getJson<{ replicas: Replica[] }>("/api/v1/cluster")).replicas;
  }
  return { models: withVersions, replicas };
}

function loadedOn(replicas: Replica[] | null, model: string, version: number) {
  if (!replicas || replicas.length < 2) return null;
  const live = replicas.filter((r) => r.state !== "gone");
  const holding = live.filter((r) => r.loaded.some((l) => l.model === model && l.version === version));
  return html`<span class="muted" title=${holding.map((r) => r.address || r.id).join(", ")}>
    on ${holding.length}/${live.length} replicas</span
  >`;
}

export function ModelsPage({ me }: { me: Whoami }) {
  const loaded = useLoad(() => overview(me), [me.key_id]);
  return html`<section>
    <div class="title-row">
      <h1>Models</h1>
      <button onClick=${loaded.reload} disabled=${loaded.loading}>Refresh</button>
    </div>
    <${Show} loaded=${loaded}>
      ${(data: Overview) =>
        data.models.length === 0
          ? html`<p class="muted">No models yet: push one with <code>modelbay push NAME FILE</code>.</p>`
          : html`<table class="models" data-testid="models">
              <thead>
                <tr>
                  <th>Model</th><th>Kind</th><th>Version</th><th>Aliases</th><th>Size</th>
                  <th>Digest</th><th>Pushed by</th><th>Pushed at</th><th>State</th>
                </tr>
              </thead>
              <tbody>
                ${data.models.flatMap(({ name, versions, ready }) =>
                  versions
                    .slice()
                    .reverse()
                    .map(
                      (v, i) => html`<tr data-model=${name} data-version=${v.version} class=${i === 0 ? "first" : ""}>
                        <td>${i === 0 ? html`<a href=${`#/models/${enc(name)}`}>${name}</a>` : ""}</td>
                        <td>${i === 0 ? kindOf(v.format) : ""}</td>
                        <td>${v.version}</td>
                        <td>${v.aliases.map((a) => html`<span class="tag">${a}</span>`)}</td>
                        <td>${bytes(v.size)}</td>
                        <td><code title=${v.digest}>${shortDigest(v.digest)}</code></td>
                        <td>${v.created_by}</td>
                        <td>${when(v.created_at)}</td>
                        <td>
                          ${v.archived
                            ? html`<span class="state archived">archived</span>`
                            : ready[v.version]
                              ? html`<span class="state ready">ready</span>`
                              : html`<span class="state idle">not loaded</span>`}
                          ${loadedOn(data.replicas, name, v.version)}
                        </td>
                      </tr>`,
                    ),
                )}
              </tbody>
            </table>`}
    <//>
  </section>`;
}
