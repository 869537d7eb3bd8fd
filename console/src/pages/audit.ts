// The audit trail of one model: every change from the event log, newest first.

import { html } from "htm/preact";
import { enc, getJson } from "../api";
import { Show, useLoad, when } from "../ui";
import type { ModelData } from "./model";

interface Event {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  before: unknown;
  after: unknown;
}

function state(value: unknown): string {
  if (value === null || value === undefined) return "—";
  return JSON.stringify(value);
}

export function AuditPanel({ model }: { model: ModelData }) {
  const events = useLoad(
    () => getJson<{ events: Event[] }>(`/api/v1/events?model=${enc(model.name)}`),
    [model],
  );
  return html`<div class="panel">
    <h2>Audit trail</h2>
    <${Show} loaded=${events}>
      ${({ events: list }: { events: Event[] }) => html`<table data-testid="audit" class="audit">
        <thead><tr><th>#</th><th>When</th><th>Who</th><th>What</th><th>Before</th><th>After</th></tr></thead>
        <tbody>
          ${list
            .slice()
            .reverse()
            .map(
              (e) => html`<tr data-kind=${e.kind}>
                <td>${e.seq}</td><td>${when(e.at)}</td><td>${e.actor}</td><td><b>${e.kind}</b></td>
                <td><code>${state(e.before)}</code></td><td><code>${state(e.after)}</code></td>
              </tr>`,
            )}
        </tbody>
      </table>`}
    <//>
  </div>`;
}
