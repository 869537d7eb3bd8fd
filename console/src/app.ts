// The shell: logging in with a key, the navigation (only what the key's role allows), and the
// hash routes of the pages.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { allows, login, setUnauthenticatedHandler, storedKey, storeKey, type Whoami } from "./api";
import { asApiError, ErrorBox } from "./ui";
import { ModelsPage } from "./pages/models";
import { ModelPage } from "./pages/model";
import { PlaygroundPage } from "./pages/playground";
import { KeysPage } from "./pages/keys";
import type { ApiError } from "./api";

function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/models");
  useEffect(() => {
    const onChange = () => setHash(location.hash || "#/models");
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

function Login({ onLogin, notice }: { onLogin: (me: Whoami) => void; notice: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await login(key.trim());
      storeKey(key.trim());
      onLogin(me);
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="login">
    <h1>modelbay</h1>
    ${notice && html`<div class="error" role="alert">${notice}</div>`}
    <form onSubmit=${submit}>
      <label>
        API key
        <input
          name="key"
          type="password"
          autocomplete="off"
          placeholder="mbk_…"
          value=${key}
          onInput=${(e: any) => setKey(e.target.value)}
        />
      </label>
      <button class="primary" type="submit" disabled=${busy || !key.trim()}>Log in</button>
    </form>
    <${ErrorBox} error=${error} />
    <p class="muted">
      The key stays in this tab's session storage and is sent as a bearer token. The first start
      of a server writes an admin key to <code>modelbay-data/admin.key</code>.
    </p>
  </main>`;
}

export function App() {
  const [me, setMe] = useState<Whoami | null>(null);
  const [checking, setChecking] = useState(!!storedKey());
  const [notice, setNotice] = useState<string | null>(null);
  const hash = useHash();

  const logout = (message: string | null) => {
    storeKey(null);
    setMe(null);
    setNotice(message);
  };

  useEffect(() => {
    setUnauthenticatedHandler((message) => logout(`Logged out: ${message}`));
    const key = storedKey();
    if (!key) return;
    login(key).then(
      (who) => {
        setMe(who);
        setChecking(false);
      },
      (e) => {
        logout(`Logged out: ${asApiError(e).message}`);
        setChecking(false);
      },
    );
  }, []);

  if (checking) return html`<p class="muted">Checking the key…</p>`;
  if (!me) return html`<${Login} notice=${notice} onLogin=${(who: Whoami) => (setNotice(null), setMe(who))} />`;

  const [, page, ...rest] = hash.slice(1).split("/").map(decodeURIComponent);
  const nav = [
    { href: "#/models", label: "Models", show: true },
    { href: "#/playground", label: "Playground", show: allows(me.role, "infer") },
    { href: "#/keys", label: "Keys", show: allows(me.role, "keys") },
  ];
  let content;
  if (page === "models" && rest[0]) content = html`<${ModelPage} me=${me} name=${rest[0]} tab=${rest[1] ?? "versions"} />`;
  else if (page === "playground" && allows(me.role, "infer")) content = html`<${PlaygroundPage} model=${rest[0]} />`;
  else if (page === "keys")
    content = allows(me.role, "keys")
      ? html`<${KeysPage} me=${me} />`
      : html`<div class="error" role="alert">Only admin keys can manage keys.</div>`;
  else content = html`<${ModelsPage} me=${me} />`;

  return html`<div class="shell">
    <header>
      <a class="brand" href="#/models">modelbay</a>
      <nav>
        ${nav
          .filter((n) => n.show)
          .map((n) => html`<a href=${n.href} class=${hash.startsWith(n.href) ? "active" : ""}>${n.label}</a>`)}
      </nav>
      <span class="who" data-role=${me.role}>${me.label} · <b>${me.role}</b></span>
      <button onClick=${() => logout(null)}>Log out</button>
    </header>
    <main>${content}</main>
  </div>`;
}
