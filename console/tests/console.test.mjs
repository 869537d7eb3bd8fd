// The console in a real browser (Debian's chromium, driven by playwright-core) against a real
// modelbay server prepared here: log in, see the models, promote, roll back and change a split
// and see the served version change, see a chart move, stream a chat, call a tool and answer
// it, rank texts with an embedding model, infer from the signature's form, explain a row, see drift, manage keys, and
// a consumer key that cannot reach the keys page. Fails on any console error the page did not
// expect. Screenshots go to $CONSOLE_ARTIFACTS (default console/test-results).
//
//   node tests/console.test.mjs path/to/modelbay

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const binary = process.argv[2];
if (!binary) throw new Error("usage: node tests/console.test.mjs path/to/modelbay");
const repo = resolve(import.meta.dirname, "../..");
const fixtures = join(repo, "fixtures");
const artifacts = resolve(process.env.CONSOLE_ARTIFACTS ?? join(import.meta.dirname, "../test-results"));
mkdirSync(artifacts, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), "modelbay-console-"));
  const proc = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const lines = createInterface({ input: proc.stdout });
  for await (const line of lines) {
    const m = line.match(/^modelbay listening on (http:\/\/\S+)/);
    if (m) {
      lines.on("line", () => {});
      const key = readFileSync(join(dataDir, "admin.key"), "utf8").trim();
      return { proc, url: m[1], key, dataDir };
    }
  }
  throw new Error("the server exited before listening");
}

const server = await startServer();
const api = async (method, path, body, { key = server.key, type = "application/json" } = {}) => {
  const response = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": type } : {}) },
    body: body === undefined ? undefined : typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
};
const push = (name, file) => api("POST", `/api/v1/models/${name}/versions`, readFileSync(file), { type: "application/octet-stream" });

const referenceCsv = readFileSync(join(fixtures, "breast_cancer.reference.csv"), "utf8");
const referenceRows = referenceCsv.trim().split("\n").slice(1).map((l) => l.split(",").map(Number));
const infer = (rows, headers = {}) =>
  fetch(`${server.url}/v2/models/bc/infer`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ inputs: [{ name: "input", datatype: "FP32", shape: [rows.length, 30], data: rows.flat() }] }),
  }).then(async (r) => (check(r.ok, `infer: ${r.status}`), r.headers.get("x-modelbay-model-version")));

let browser;
let lastPage = null;
const failures = [];
try {
  // Two versions of a tabular model (v1 serves), the chat model, reference data for v1.
  await push("bc", join(fixtures, "breast_cancer_lr.onnx"));
  await push("bc", join(fixtures, "breast_cancer_rf.onnx"));
  await api("PUT", "/api/v1/models/bc/versions/1/reference", referenceCsv, { type: "text/csv" });
  const smollm = process.env.MODELBAY_SMOLLM2;
  check(smollm, "MODELBAY_SMOLLM2 names the chat model (eval \"$(scripts/fetch-models.sh)\")");
  await push("chat", smollm);
  // The embedding model is a folder: the CLI packs and pushes it.
  const minilm = process.env.MODELBAY_MINILM_ONNX;
  check(minilm, "MODELBAY_MINILM_ONNX names the embedding model (eval \"$(scripts/fetch-models.sh)\")");
  execFileSync(binary, ["push", "minilm", minilm, "--server", server.url], {
    env: { ...process.env, MODELBAY_API_KEY: server.key },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const consumer = (await api("POST", "/api/v1/keys", { role: "consumer", label: "app" })).secret;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

  /** A fresh tab; every console error and page error it logs is a failure unless `allowed`. */
  const newPage = async (name, allowed = () => false) => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && !allowed(m.text()) && failures.push(`${name}: console error: ${m.text()}`));
    page.on("pageerror", (e) => failures.push(`${name}: page error: ${e.message}`));
    page.setDefaultTimeout(20000);
    lastPage = page;
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  const logIn = async (page, key) => {
    await page.goto(`${server.url}/ui`);
    await page.fill("input[name=key]", key);
    await page.click("button[type=submit]");
    await page.waitForSelector(".shell");
  };
  const step = (name) => console.log(`- ${name}`);

  // Admin: every flow.
  const page = await newPage("admin");
  step("log in and see the models");
  await logIn(page, server.key);
  await page.waitForSelector("[data-testid=models] tr[data-model=bc][data-version='2']");
  check(await page.isVisible("tr[data-model=chat]"), "the chat model is listed");
  const bcRow = await page.textContent("tr[data-model=bc][data-version='1']");
  check(bcRow.includes("production") && bcRow.includes("ready"), `bc v1 is production and ready: ${bcRow}`);
  check(await page.isVisible("a[href='#/keys']"), "an admin sees the keys page link");
  await shot(page, "01-models");

  step("promote v2, see it served; roll back, see v1 served");
  let probes = 0;
  const served = async () => {
    await page.click("[data-testid=probe] button");
    probes += 1;
    await page.waitForSelector(`[data-testid=served][data-run='${probes}']`);
    const versions = await page.$$eval("[data-served-version]", (els) => els.map((e) => e.dataset.servedVersion));
    return versions.join(",");
  };
  await page.click("a[href='#/models/bc']");
  await page.waitForSelector("[data-testid=aliases] tr[data-alias=production]");
  check((await served()) === "1", "v1 serves before the promotion");
  await page.selectOption("select[name=promote-version]", "2");
  await page.click("[data-testid=promote] button:has-text('Promote')");
  await page.click("[data-testid=promote] .dialog button:has-text('Confirm')");
  await page.waitForFunction(() => document.querySelector("tr[data-alias=production] .alias-version")?.textContent === "2");
  check((await served()) === "2", "v2 serves after the promotion");
  await shot(page, "02-promoted");
  await page.click("tr[data-alias=production] button:has-text('Roll back')");
  await page.click("tr[data-alias=production] .dialog button:has-text('Confirm')");
  await page.waitForFunction(() => document.querySelector("tr[data-alias=production] .alias-version")?.textContent === "1");
  check((await served()) === "1", "v1 serves after the rollback");

  step("change the split (all to v2, shadow v1) and see v2 served and the shadow report");
  await page.fill("input[name=target-0]", "2");
  await page.fill("input[name=shadow]", "1");
  await page.click("[data-testid=split-editor] button:has-text('Save split')");
  await page.click("[data-testid=split-editor] .dialog button:has-text('Confirm')");
  await page.waitForFunction(() => document.querySelector("[data-testid=policy]")?.textContent.includes("2 × 100"));
  check((await served()) === "2", "the split sends every request to v2");
  await page.click("[data-testid=shadow] button:has-text('Refresh')");
  await page.waitForSelector("[data-testid=shadow][data-requests='20']");
  const events = await page.$$eval("[data-testid=audit] tr[data-kind]", (rows) => rows.map((r) => r.dataset.kind));
  check(events.includes("policy.set") && events.includes("alias.rollback") && events.includes("alias.set"), `the audit trail: ${events}`);
  await shot(page, "03-split");
  await page.click("button:has-text('Remove split')");
  await page.click(".dialog button:has-text('Confirm')");
  await page.waitForFunction(() => document.querySelector("[data-testid=policy]")?.textContent.includes("No split"));

  step("see the requests chart move while requests arrive");
  await page.click("a:has-text('Live charts')");
  await page.waitForSelector("[data-testid=chart-requests]");
  const deadline = Date.now() + 20000;
  let moved = false;
  while (!moved && Date.now() < deadline) {
    await Promise.all(Array.from({ length: 10 }, () => infer(referenceRows.slice(0, 2))));
    await new Promise((r) => setTimeout(r, 300));
    moved = await page.$eval("[data-testid=chart-requests]", (el) => Number(el.dataset.latest) > 0 && Number(el.dataset.points) >= 1);
  }
  check(moved, "the requests-per-second chart shows the requests");
  check(await page.isVisible("[data-testid=chart-latency] canvas"), "the latency chart is drawn");
  await shot(page, "04-charts");

  step("drift flags the shifted feature; explain one row");
  const shifted = referenceRows.slice(0, 150).map((row) => row.map((v, j) => (j === 0 ? v * 3 : v)));
  for (let i = 0; i < shifted.length; i += 50) await infer(shifted.slice(i, i + 50));
  await page.click("a:has-text('Drift & explain')");
  await page.waitForSelector("[data-testid=drift] tr[data-feature]");
  const drifted = await page.$$eval("[data-testid=drift] tr[data-drifted=true]", (rows) => rows.map((r) => r.dataset.feature));
  check(drifted.includes("mean radius"), `mean radius is flagged: ${drifted}`);
  const names = referenceCsv.split("\n")[0].split(",");
  for (let j = 0; j < 30; j++) await page.fill(`input[name='x-${names[j]}']`, String(referenceRows[0][j]));
  await page.click("button:has-text('Explain')");
  await page.waitForSelector("[data-testid=attributions] g[data-feature]");
  const bars = await page.$$eval("[data-testid=attributions] g[data-feature]", (g) => g.length);
  check(bars === 20, `the 20 largest attributions are drawn: ${bars}`);
  await shot(page, "05-drift-explain");

  step("chat streams text");
  await page.click("a[href='#/playground']");
  await page.waitForSelector("[data-testid=chat]");
  await page.fill("input[name=message]", "Write a short story about a lighthouse keeper.");
  await page.click("[data-testid=chat] button[type=submit]");
  const lengths = new Set();
  const chatDeadline = Date.now() + 60000;
  while (Date.now() < chatDeadline && !(await page.isVisible("[data-testid=finish]"))) {
    const text = await page.$eval("[data-testid=chat] li[data-role=assistant] .content", (e) => e.textContent).catch(() => "");
    if (text) lengths.add(text.length);
    await new Promise((r) => setTimeout(r, 20));
  }
  const reply = await page.textContent("[data-testid=chat] li[data-role=assistant] .content");
  check(reply.trim().length > 0, "the assistant answered");
  check(lengths.size >= 2, `the answer arrived in pieces (${[...lengths]})`);
  await shot(page, "06-chat");

  step("a required tool call is shown, answered with its result, and the model answers in text");
  await page.click("[data-testid=chat] button:has-text('Clear')");
  await page.fill("[data-testid=chat] > label textarea", "You are the support assistant of an online shop. Be brief and friendly.");
  await page.click("[data-testid=chat] details summary");
  await page.click("button:has-text('Add an order-lookup tool')");
  await page.selectOption("select[name=tool_choice]", "required");
  await page.fill("input[name=message]", "Where is my order A1234?");
  await page.click("[data-testid=chat] button[type=submit]");
  await page.waitForSelector("[data-testid=tool-call]", { timeout: 60000 });
  await page.waitForSelector("[data-testid=chat] button[type=submit]:has-text('Send')");
  await page.waitForFunction(() => document.querySelector("[data-testid=finish]")?.textContent.includes("tool_calls"));
  const call = await page.textContent("[data-testid=tool-call] code");
  const args = JSON.parse(call.replace(/^lookup_order\(/, "").replace(/\)$/, ""));
  check(call.startsWith("lookup_order(") && typeof args.order_id === "string", `the call names the tool with its arguments: ${call}`);
  const placeholder = await page.getAttribute("input[name=message]", "placeholder");
  check(placeholder.includes("lookup_order"), `the input asks for the call's result: ${placeholder}`);
  await page.selectOption("select[name=tool_choice]", "none");
  await page.fill("input[name=message]", '{"status": "shipped", "carrier": "DHL", "eta": "Friday"}');
  await page.click("[data-testid=chat] button[type=submit]");
  await page.waitForSelector("[data-testid=chat] li[data-role=tool]");
  await page.waitForFunction(() => document.querySelector("[data-testid=finish]")?.textContent.includes("finish reason: stop") || document.querySelector("[data-testid=finish]")?.textContent.includes("length"), null, { timeout: 60000 });
  const answers = await page.$$eval("[data-testid=chat] li[data-role=assistant] .content", (cells) => cells.map((c) => c.textContent));
  check(answers.length === 2, `two assistant turns: the call and the answer (${answers.length})`);
  const answer = answers[1].trim();
  check(answer.length > 0 && !answer.startsWith("{"), `the model answers the result in text: ${answer}`);
  await shot(page, "07-chat-tool");

  step("the embeddings tool ranks texts by similarity");
  await page.goto(`${server.url}/ui/#/playground/minilm`);
  await page.waitForSelector("[data-testid=similarity]");
  await page.click("[data-testid=similarity] button.primary");
  await page.waitForSelector("[data-testid=ranking]");
  const ranking = await page.$$eval("[data-testid=ranking] tbody tr td:first-child", (cells) => cells.map((c) => c.textContent));
  check(ranking.length === 4 && ranking[0] === "trail running sneakers", `the closest text comes first (${ranking})`);
  await shot(page, "08-similarity");

  step("the v2 form built from the signature infers one row");
  await page.goto(`${server.url}/ui/#/playground/bc`);
  await page.waitForSelector("[data-testid=tensor-form]");
  const row = referenceCsv.trim().split("\n")[1].split(",");
  check(row.length === 30, "a reference row has 30 features");
  for (const [j, value] of row.entries()) await page.fill(`input[name=input-${j}]`, value);
  await page.click("[data-testid=tensor-form] button.primary");
  await page.waitForSelector("[data-testid=infer-result]");
  const result = await page.textContent("[data-testid=infer-result]");
  check(/answered by version \d/.test(result) && result.includes("probabilities"), `the answer is shown (${result})`);
  await shot(page, "09-tensor-form");

  step("create a key (secret shown once) and see it listed");
  await page.click("a[href='#/keys']");
  await page.fill("[data-testid=create-key] input[name=label]", "console-made");
  await page.selectOption("[data-testid=create-key] select[name=role]", "viewer");
  await page.click("[data-testid=create-key] button[type=submit]");
  const secret = await page.textContent("[data-testid=secret]");
  check(secret.startsWith("mbk_"), "the new key's secret is shown");
  await page.waitForSelector("[data-testid=keys] tr[data-label=console-made]");
  await shot(page, "10-keys");
  step("revoke it");
  await page.click("tr[data-label=console-made] button:has-text('Revoke')");
  await page.click("tr[data-label=console-made] .dialog button:has-text('Confirm')");
  await page.waitForFunction(() => document.querySelector("tr[data-label=console-made]")?.textContent.includes("revoked"));
  const gone = await fetch(`${server.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } });
  check(gone.status === 401, `the revoked key is refused: ${gone.status}`);

  step("a consumer key cannot see the keys page");
  const consumerPage = await newPage("consumer");
  await logIn(consumerPage, consumer);
  await consumerPage.waitForSelector("[data-testid=models]");
  check(!(await consumerPage.isVisible("a[href='#/keys']")), "no keys link for a consumer");
  await consumerPage.goto(`${server.url}/ui/#/keys`);
  await consumerPage.waitForSelector(".error");
  check(!(await consumerPage.isVisible("[data-testid=keys]")), "no key list for a consumer");
  await shot(consumerPage, "11-consumer-keys");

  step("a wrong key is refused; an expired key logs the console out");
  const refused = (text) => /status of 401/.test(text);
  const other = await newPage("expiry", refused);
  await other.goto(`${server.url}/ui`);
  await other.fill("input[name=key]", "mbk_wrong");
  await other.click("button[type=submit]");
  await other.waitForSelector(".login .error");
  const shortLived = (await api("POST", "/api/v1/keys", { role: "viewer", label: "brief", expires_in: "2s" })).secret;
  await logIn(other, shortLived);
  await other.waitForSelector("[data-testid=models]");
  await new Promise((r) => setTimeout(r, 2500));
  await other.click("button:has-text('Refresh')");
  await other.waitForSelector(".login [role=alert]");
  check((await other.textContent(".login [role=alert]")).includes("Logged out"), "the expired key's session ends visibly");
  await shot(other, "12-expired");
} catch (e) {
  failures.push(e.stack ?? String(e));
  await lastPage?.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser?.close();
  server.proc.kill("SIGTERM");
  rmSync(server.dataDir, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`console browser test FAILED (screenshots in ${artifacts}):\n${failures.join("\n")}`);
  process.exit(1);
}
console.log(`console browser test passed (screenshots in ${artifacts})`);
