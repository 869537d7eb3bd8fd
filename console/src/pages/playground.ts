// Playgrounds: a streaming chat (tool calls shown and answered) for language models, a similarity tool for
// embedding models and a form built from the signature for v2 tensor models.

import { html } from "htm/preact";
import { useRef, useState } from "preact/hooks";
import { enc, getJson, readEvents, send, sendJson } from "../api";
import { asApiError, ErrorBox, fmt, kindOf, Show, useLoad } from "../ui";
import type { ModelData } from "./model";
import type { VersionRecord } from "./models";
import { inferRequest, isText, rowWidth } from "./tensors";
import type { ApiError } from "../api";

interface ChatMessage {
  role: string;
  content: string;
  reasoning?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

/** The calls of the last assistant turn that no tool message has answered yet. */
function pendingCalls(messages: ChatMessage[]): ToolCall[] {
  const last = messages.map((m) => m.role).lastIndexOf("assistant");
  if (last < 0) return [];
  const answered = new Set(messages.slice(last + 1).map((m) => m.tool_call_id));
  return (messages[last].tool_calls ?? []).filter((c) => !answered.has(c.id));
}

const ORDER_TOOL = JSON.stringify(
  [
    {
      type: "function",
      function: {
        name: "lookup_order",
        description: "Look up an order by its id",
        parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
      },
    },
  ],
  null,
  2,
);

function Chat({ model }: { model: string }) {
  const [system, setSystem] = useState("You are a helpful assistant.");
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [input, setInput] = useState("");
  const [tools, setTools] = useState("");
  const [toolChoice, setToolChoice] = useState("auto");
  const [maxTokens, setMaxTokens] = useState("128");
  const [temperature, setTemperature] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [finish, setFinish] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  const pending = pendingCalls(messages);
  const sendMessage = async (e: Event) => {
    e.preventDefault();
    if (!input.trim()) return;
    // While the model waits for tool results, what is typed is the result of the next call;
    // the conversation goes back to the model once every call has one.
    const next: ChatMessage = pending.length
      ? { role: "tool", content: input, tool_call_id: pending[0].id }
      : { role: "user", content: input };
    const history: ChatMessage[] = [...messages, next];
    setInput("");
    if (pending.length > 1) {
      setMessages(history);
      return;
    }
    setMessages([...history, { role: "assistant", content: "" }]);
    setBusy(true);
    setError(null);
    setFinish(null);
    const body: Record<string, unknown> = {
      model,
      stream: true,
      messages: [
        ...(system.trim() ? [{ role: "system", content: system }] : []),
        ...history.map((m) => ({
          role: m.role,
          content: m.content,
          ...(m.tool_calls ? { tool_calls: m.tool_calls } : {}),
          ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
        })),
      ],
      max_tokens: Number(maxTokens) || undefined,
    };
    if (temperature.trim()) body.temperature = Number(temperature);
    try {
      if (tools.trim()) {
        body.tools = JSON.parse(tools);
        if (toolChoice !== "auto") body.tool_choice = toolChoice;
      }
    } catch (err) {
      setError(asApiError(new Error(`the tools are not valid JSON: ${(err as Error).message}`)));
      setBusy(false);
      return;
    }
    abort.current = new AbortController();
    const reply: ChatMessage = { role: "assistant", content: "" };
    try {
      const response = await fetchStream(body, abort.current.signal);
      await readEvents(response, (event) => {
        const choice = event.choices?.[0];
        if (!choice) return;
        const delta = choice.delta ?? {};
        if (delta.content) reply.content += delta.content;
        if (delta.reasoning_content) reply.reasoning = (reply.reasoning ?? "") + delta.reasoning_content;
        for (const call of delta.tool_calls ?? []) {
          reply.tool_calls ??= [];
          const slot = (reply.tool_calls[call.index ?? 0] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
          if (call.id) slot.id = call.id;
          if (call.function?.name) slot.function.name += call.function.name;
          if (call.function?.arguments) slot.function.arguments += call.function.arguments;
        }
        if (choice.finish_reason) setFinish(choice.finish_reason);
        setMessages([...history, { ...reply }]);
      });
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError(asApiError(err));
    } finally {
      setBusy(false);
      abort.current = null;
    }
  };

  return html`<div class="chat" data-testid="chat">
    <label>System prompt <textarea rows="2" value=${system} onInput=${(e: any) => setSystem(e.target.value)} /></label>
    <details>
      <summary>Options and tools</summary>
      <div class="form-row">
        <label>Max tokens <input type="number" min="1" value=${maxTokens} onInput=${(e: any) => setMaxTokens(e.target.value)} /></label>
        <label>Temperature <input placeholder="model default" value=${temperature} onInput=${(e: any) => setTemperature(e.target.value)} /></label>
        <button onClick=${() => setTools(tools ? "" : ORDER_TOOL)}>${tools ? "Remove tools" : "Add an order-lookup tool"}</button>
        <label
          >Tool choice
          <select name="tool_choice" value=${toolChoice} onChange=${(e: any) => setToolChoice(e.target.value)}>
            <option value="auto">auto</option>
            <option value="required">required</option>
            <option value="none">none</option>
          </select></label
        >
      </div>
      <label>Tools (OpenAI JSON) <textarea name="tools" rows="6" value=${tools} onInput=${(e: any) => setTools(e.target.value)} /></label>
    </details>
    <ol class="messages">
      ${messages.map(
        (m) => html`<li class=${`message ${m.role}`} data-role=${m.role}>
          <b>${m.role}</b>
          ${m.tool_call_id && html`<span class="muted"> result of ${callName(messages, m.tool_call_id)}</span>`}
          ${m.reasoning && html`<details class="reasoning"><summary>reasoning</summary>${m.reasoning}</details>`}
          <div class="content">${m.content}</div>
          ${m.tool_calls?.map(
            (c) => html`<div class="tool-call" data-testid="tool-call"><code>${c.function.name}(${c.function.arguments})</code></div>`,
          )}
        </li>`,
      )}
    </ol>
    ${finish && html`<p class="muted" data-testid="finish">finish reason: ${finish}</p>`}
    <${ErrorBox} error=${error} />
    <form class="form-row" onSubmit=${sendMessage}>
      <input
        name="message"
        class="grow"
        placeholder=${pending.length ? `The result of ${pending[0].function.name} (e.g. JSON)…` : "Say something…"}
        value=${input}
        onInput=${(e: any) => setInput(e.target.value)}
      />
      <button class="primary" type="submit" disabled=${busy || !input.trim()}>Send</button>
      ${busy && html`<button type="button" onClick=${() => abort.current?.abort()}>Stop</button>`}
      <button type="button" disabled=${busy} onClick=${() => (setMessages([]), setFinish(null))}>Clear</button>
    </form>
  </div>`;
}

function callName(messages: ChatMessage[], id: string): string {
  const call = messages.flatMap((m) => m.tool_calls ?? []).find((c) => c.id === id);
  return call ? call.function.name : id;
}

async function fetchStream(body: unknown, signal: AbortSignal): Promise<Response> {
  // `send` handles errors and the key; the signal lets Stop end the stream.
  const response = await send("POST", "/v1/chat/completions", body, { accept: "text/event-stream" });
  signal.addEventListener("abort", () => response.body?.cancel());
  return response;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb || 1);
}

function Similarity({ model }: { model: string }) {
  const [query, setQuery] = useState("running shoes for trails");
  const [texts, setTexts] = useState("trail running sneakers\nwaterproof hiking boots\nstainless steel saucepan\ncotton summer dress");
  const [ranked, setRanked] = useState<{ text: string; score: number }[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    const lines = texts.split("\n").map((t) => t.trim()).filter(Boolean);
    setBusy(true);
    setError(null);
    try {
      const { data } = await sendJson("POST", "/v1/embeddings", { model, input: [query, ...lines] });
      const vectors = data.sort((a: any, b: any) => a.index - b.index).map((d: any) => d.embedding);
      setRanked(lines.map((text, i) => ({ text, score: cosine(vectors[0], vectors[i + 1]) })).sort((a, b) => b.score - a.score));
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<div data-testid="similarity">
    <label>Query <input name="query" class="grow" value=${query} onInput=${(e: any) => setQuery(e.target.value)} /></label>
    <label>Texts, one per line <textarea name="texts" rows="6" value=${texts} onInput=${(e: any) => setTexts(e.target.value)} /></label>
    <button class="primary" onClick=${run} disabled=${busy}>${busy ? "Embedding…" : "Rank by similarity"}</button>
    <${ErrorBox} error=${error} />
    ${ranked &&
    html`<table data-testid="ranking">
      <thead><tr><th>Text</th><th>Cosine similarity</th></tr></thead>
      <tbody>
        ${ranked.map((r) => html`<tr><td>${r.text}</td><td>${fmt(r.score, 4)} <span class="bar" style=${{ width: `${Math.max(0, 100 * r.score)}px` }}></span></td></tr>`)}
      </tbody>
    </table>`}
  </div>`;
}

function TensorForm({ model, version }: { model: string; version: VersionRecord }) {
  const [values, setValues] = useState<Record<string, string[]>>({});
  const [result, setResult] = useState<{ version: string | null; body: any } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async () => {
    setError(null);
    try {
      const response = await send("POST", `/v2/models/${enc(model)}/infer`, inferRequest(version.signature, values));
      setResult({ version: response.headers.get("x-modelbay-model-version"), body: await response.json() });
    } catch (e) {
      setError(asApiError(e));
    }
  };
  return html`<div data-testid="tensor-form">
    ${version.signature.inputs.map(
      (spec) => html`<fieldset>
        <legend>${spec.name} <span class="muted">${spec.datatype} [${spec.shape.join(", ")}]</span></legend>
        <div class="fields">
          ${Array.from({ length: rowWidth(spec) }, (_, j) => html`<label class="field">[${j}]
            <input name=${`${spec.name}-${j}`} placeholder=${isText(spec) ? "text" : "0"} value=${values[spec.name]?.[j] ?? ""}
              onInput=${(e: any) => {
                const row = [...(values[spec.name] ?? [])];
                row[j] = e.target.value;
                setValues({ ...values, [spec.name]: row });
              }} />
          </label>`)}
        </div>
      </fieldset>`,
    )}
    <button class="primary" onClick=${run}>Infer</button>
    <${ErrorBox} error=${error} />
    ${result &&
    html`<div data-testid="infer-result">
      <p class="muted">answered by version ${result.version}</p>
      <table>
        <thead><tr><th>Output</th><th>Type</th><th>Shape</th><th>Data</th></tr></thead>
        <tbody>
          ${result.body.outputs.map(
            (o: any) => html`<tr><td>${o.name}</td><td>${o.datatype}</td><td>[${o.shape.join(", ")}]</td><td><code>${JSON.stringify(o.data)}</code></td></tr>`,
          )}
        </tbody>
      </table>
    </div>`}
  </div>`;
}

/** The playground of one model, by its kind. */
export function TryIt({ model }: { model: ModelData }) {
  const newest = model.versions.filter((v) => !v.archived).pop();
  if (model.kind === "language") return html`<${Chat} model=${model.name} />`;
  if (model.kind === "embedding") return html`<${Similarity} model=${model.name} />`;
  if (!newest) return html`<p class="muted">Every version is archived.</p>`;
  return html`<${TensorForm} model=${model.name} version=${newest} />`;
}

/** Pick a model, then its playground. */
export function PlaygroundPage({ model }: { model?: string }) {
  const models = useLoad(async () => {
    const { models: list } = await getJson<{ models: { name: string }[] }>("/api/v1/models");
    return Promise.all(
      list.map(async ({ name }) => {
        const { versions } = await getJson<{ versions: VersionRecord[] }>(`/api/v1/models/${enc(name)}/versions`);
        return { name, kind: kindOf(versions[versions.length - 1]?.format ?? "onnx"), versions } as ModelData;
      }),
    );
  }, []);
  return html`<section>
    <h1>Playground</h1>
    <${Show} loaded=${models}>
      ${(list: ModelData[]) => {
        const chosen = list.find((m) => m.name === model) ?? list.find((m) => m.kind === "language") ?? list[0];
        if (!chosen) return html`<p class="muted">No models yet.</p>`;
        return html`<div>
          <label>Model
            <select name="playground-model" value=${chosen.name} onChange=${(e: any) => (location.hash = `#/playground/${enc(e.target.value)}`)}>
              ${list.map((m) => html`<option value=${m.name}>${m.name} (${m.kind})</option>`)}
            </select>
          </label>
          <${TryIt} key=${chosen.name} model=${chosen} />
        </div>`;
      }}
    <//>
  </section>`;
}
