// One model: its tabs (versions and routing, live charts, drift and explanations, try it).

import { html } from "htm/preact";
import { allows, enc, getJson, type Whoami } from "../api";
import { kindOf, Show, useLoad } from "../ui";
import type { VersionRecord } from "./models";
import { VersionsTab } from "./versions";
import { ChartsTab } from "./charts";
import { DriftTab } from "./drift";
import { TryIt } from "./playground";

export interface ModelData {
  name: string;
  kind: string;
  versions: VersionRecord[];
}

export function ModelPage({ me, name, tab }: { me: Whoami; name: string; tab: string }) {
  const loaded = useLoad(async (): Promise<ModelData> => {
    const { versions } = await getJson<{ versions: VersionRecord[] }>(`/api/v1/models/${enc(name)}/versions`);
    const newest = versions[versions.length - 1];
    return { name, kind: kindOf(newest?.format ?? "onnx"), versions };
  }, [name]);
  const inspect = allows(me.role, "inspect");
  const tabs = [
    { id: "versions", label: "Versions & routing", show: true },
    { id: "charts", label: "Live charts", show: inspect },
    { id: "drift", label: "Drift & explain", show: inspect },
    { id: "try", label: "Try it", show: allows(me.role, "infer") },
  ].filter((t) => t.show);
  const current = tabs.some((t) => t.id === tab) ? tab : "versions";
  return html`<section>
    <div class="title-row">
      <h1><a href="#/models">Models</a> / ${name}</h1>
    </div>
    <nav class="tabs">
      ${tabs.map(
        (t) => html`<a href=${`#/models/${enc(name)}/${t.id}`} class=${t.id === current ? "active" : ""}>${t.label}</a>`,
      )}
    </nav>
    <${Show} loaded=${loaded}>
      ${(model: ModelData) => {
        switch (current) {
          case "charts":
            return html`<${ChartsTab} model=${model} />`;
          case "drift":
            return html`<${DriftTab} me=${me} model=${model} />`;
          case "try":
            return html`<${TryIt} model=${model} />`;
          default:
            return html`<${VersionsTab} me=${me} model=${model} onChange=${loaded.reload} />`;
        }
      }}
    <//>
  </section>`;
}
