// Every call the console makes goes through here: the key from session storage as a bearer
// token, JSON errors turned into ApiError, and an expired or revoked key ending the session.

const KEY_STORAGE = "modelbay.key";

export type Role = "admin" | "publisher" | "consumer" | "viewer";
export type Access = "metadata" | "infer" | "inspect" | "publish" | "keys";

/** What a role may do: the server's `Role::allows`, mirrored to decide what to show. */
export function allows(role: Role, access: Access): boolean {
  switch (role) {
    case "admin":
      return true;
    case "publisher":
      return access === "metadata" || access === "inspect" || access === "publish";
    case "consumer":
      return access === "metadata" || access === "infer";
    case "viewer":
      return access === "metadata" || access === "inspect";
  }
}

export interface Whoami {
  key_id: string | null;
  label: string;
  role: Role;
  models: string[];
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public requestId: string | null = null,
  ) {
    super(message);
  }
}

let onUnauthenticated: (message: string) => void = () => {};

/** Called when the server answers 401: the key expired, was revoked or is wrong. */
export function setUnauthenticatedHandler(handler: (message: string) => void) {
  onUnauthenticated = handler;
}

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string | null) {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}`, ...extra } : extra;
}

async function errorOf(response: Response): Promise<ApiError> {
  const requestId = response.headers.get("x-request-id");
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    // modelbay's own errors are {"error": "..."}; the OpenAI routes' {"error": {"message"}}.
    const error = body?.error;
    if (typeof error === "string") message = error;
    else if (error && typeof error.message === "string") message = error.message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, message, requestId);
}

/** Sends a request and returns the response, or throws ApiError for a non-2xx answer. */
export async function send(
  method: string,
  path: string,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${(e as Error).message})`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && storedKey()) onUnauthenticated(error.message);
    throw error;
  }
  return response;
}

export async function getJson<T = any>(path: string): Promise<T> {
  return (await send("GET", path)).json();
}

export async function sendJson<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  return (await send(method, path, body)).json();
}

/** Checks a key without keeping it: whoami with that key. */
export async function login(key: string): Promise<Whoami> {
  const response = await fetch("/api/v1/whoami", { headers: { authorization: `Bearer ${key}` } });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/**
 * Reads a server-sent event stream (OpenAI's `data: {...}` lines, ended by `data: [DONE]`),
 * calling `onEvent` with each parsed event.
 */
export async function readEvents(response: Response, onEvent: (event: any) => void) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

export const enc = encodeURIComponent;
