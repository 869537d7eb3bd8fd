// Small pieces every page uses: loading data, showing errors, confirming changes, formatting.

import { html } from "htm/preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export { html };

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (and on `reload()`), keeping its result or its error. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean }>(
    { data: null, error: null, loading: true },
  );
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error: asApiError(error), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, String((e as Error)?.message ?? e));
}

export function ErrorBox({ error }: { error: ApiError | null }) {
  if (!error) return null;
  const id = error.requestId ? html`<span class="muted"> (request ${error.requestId})</span>` : null;
  const status = error.status ? `${error.status}: ` : "";
  return html`<div class="error" role="alert">${status}${error.message}${id}</div>`;
}

/** Renders `children(data)` once loaded, the error if it failed, "Loading" meanwhile. */
export function Show<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => any }) {
  if (loaded.error) return html`<${ErrorBox} error=${loaded.error} />`;
  if (loaded.data === null) return html`<p class="muted">Loading…</p>`;
  return children(loaded.data);
}

/** A button that asks before it acts, then runs `action` and reports its error. */
export function ConfirmButton({
  label,
  question,
  action,
  disabled,
  danger,
}: {
  label: string;
  question: string;
  action: () => Promise<void>;
  disabled?: boolean;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await action();
      setAsking(false);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="confirm">
    ${asking
      ? html`<span class="dialog" role="dialog" aria-label=${question}>
          <span>${question}</span>
          <button class=${danger ? "danger" : "primary"} disabled=${busy} onClick=${run}>
            ${busy ? "Working…" : "Confirm"}
          </button>
          <button disabled=${busy} onClick=${() => setAsking(false)}>Cancel</button>
        </span>`
      : html`<button class=${danger ? "danger" : ""} disabled=${disabled} onClick=${() => setAsking(true)}>
          ${label}
        </button>`}
    <${ErrorBox} error=${error} />
  </span>`;
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function when(rfc3339: string | null | undefined): string {
  if (!rfc3339) return "—";
  const d = new Date(rfc3339);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

export function kindOf(format: string): string {
  switch (format) {
    case "gguf":
      return "language";
    case "sentence-transformers":
      return "embedding";
    default:
      return "tensor";
  }
}

export function fmt(n: number | null | undefined, digits = 3): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n.toPrecision(digits)).toString();
}
