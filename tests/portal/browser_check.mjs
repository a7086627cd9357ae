// Drives headless Chromium over every page of a built portal (playwright-core, Debian's /usr/bin/chromium).
// Usage: node browser_check.mjs config.json  ->  prints one JSON result object on stdout.
// config: {baseUrl, chromium, screenshotDir, pages: [{path, kind, operations?, webhooks?, diagrams?, sequence?}]}
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const base = new URL(config.baseUrl);
const LAUNCH_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function isLocal(url) {
  if (/^(data|blob|about):/.test(url)) return true;
  try { return new URL(url).origin === base.origin; } catch { return false; }
}

async function settle(page, ms = 300) {
  try { await page.waitForLoadState("networkidle", { timeout: 15000 }); } catch { /* keep going */ }
  await page.waitForTimeout(ms);
}

async function checkReference(page, spec, result) {
  // Scalar mounts asynchronously: wait until the first operation's summary is in the page.
  const first = spec.operations[0] || spec.webhooks[0];
  if (first) {
    try {
      await page.waitForFunction((t) => document.body.innerText.includes(t), first.summary || first.operationId,
        { timeout: 30000 });
    } catch { result.errors.push(`reference never showed "${first.summary}"`); }
  }
  // Every operation and webhook is in the rendered reference: Scalar lists each one (its summary) in its
  // sidebar and content. Scrolling the whole document to mount every lazy section costs minutes on a busy
  // machine, so the rendered content is spot-checked instead: the last operation and the first webhook are
  // opened from the sidebar and must show their operationId / event name.
  const text = await page.evaluate(() => document.body.innerText);
  const missing = spec.operations.filter((op) => !(op.summary && text.includes(op.summary)) && !text.includes(op.operationId))
    .map((op) => `${op.method} ${op.path} (${op.operationId})`);
  const missingHooks = (spec.webhooks || []).filter((h) => !(h.summary && text.includes(h.summary)) && !text.includes(h.event))
    .map((h) => h.event);
  const spots = [];
  const lastOp = spec.operations[spec.operations.length - 1];
  if (lastOp && lastOp.summary) spots.push({ label: lastOp.summary, expect: lastOp.operationId });
  const firstHook = (spec.webhooks || [])[0];
  if (firstHook && firstHook.summary) spots.push({ label: firstHook.summary, expect: firstHook.event });
  result.spotChecks = [];
  for (const spot of spots) {
    let ok = false;
    try {
      await page.locator("aside, nav, [class*=sidebar]").getByText(spot.label, { exact: true }).first().click({ timeout: 20000 });
      await page.waitForFunction((t) => document.getElementById("scalar-app").innerText.includes(t), spot.expect, { timeout: 30000 });
      ok = true;
    } catch (err) {
      result.errors.push(`opening "${spot.label}" from the sidebar did not show ${spot.expect}: ${String(err).slice(0, 200)}`);
    }
    result.spotChecks.push({ ...spot, ok });
  }
  await settle(page, 300);
  result.missingOperations = missing;
  result.missingWebhooks = missingHooks;
  result.operationsChecked = spec.operations.length;
  result.webhooksChecked = (spec.webhooks || []).length;
  result.codeSamples = await page.evaluate(() => /curl|httpx|fetch\(/.test(document.body.innerText));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(300);
}

async function checkDiagrams(page, spec, result) {
  try {
    await page.waitForFunction(() => document.body.dataset.diagrams, null, { timeout: 30000 });
  } catch { result.errors.push("diagrams never finished rendering"); }
  const state = await page.evaluate(() => document.body.dataset.diagrams);
  if (state !== "rendered") result.errors.push(`diagrams: ${state}`);
  const figures = await page.evaluate(() => Array.from(document.querySelectorAll("figure.diagram")).map((f) => ({
    kind: f.dataset.diagram, name: f.dataset.name, svg: !!f.querySelector("svg"),
    text: (() => {
      const svg = f.querySelector("svg");
      if (!svg) return "";
      const copy = svg.cloneNode(true);
      copy.querySelectorAll("style").forEach((s) => s.remove());
      return copy.textContent;
    })(),
  })));
  result.diagrams = [];
  for (const d of spec.diagrams || []) {
    const fig = figures.find((f) => f.kind === "lifecycle" && f.name === d.name);
    const missingStates = fig ? d.states.filter((s) => !fig.text.includes(s)) : d.states;
    result.diagrams.push({ name: d.name, svg: !!(fig && fig.svg), missingStates });
  }
  if (spec.sequence) {
    const seq = figures.find((f) => f.kind === "sequence");
    result.sequence = { svg: !!(seq && seq.svg), hasWebhook: !!(seq && /referral\.\w+/.test(seq.text)) };
  }
}

const browser = await chromium.launch({ executablePath: config.chromium, args: LAUNCH_ARGS, headless: true });

async function checkPage(spec) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const result = { path: spec.path, kind: spec.kind, requests: [], foreign: [], consoleErrors: [], failed: [], errors: [] };
  page.on("request", (r) => { result.requests.push(r.url()); if (!isLocal(r.url())) result.foreign.push(r.url()); });
  page.on("requestfailed", (r) => result.failed.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) result.failed.push(`${r.url()} HTTP ${r.status()}`); });
  page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => result.consoleErrors.push(`pageerror: ${e.message}`));
  const started = Date.now();
  try {
    await page.goto(new URL(spec.path, config.baseUrl).href, { waitUntil: "load", timeout: 60000 });
    await settle(page);
    if (spec.kind === "reference") await checkReference(page, spec, result);
    if ((spec.diagrams && spec.diagrams.length) || spec.sequence) await checkDiagrams(page, spec, result);
    await settle(page, spec.kind === "reference" ? 1500 : 300); // catch late telemetry or font requests
    result.title = await page.title();
    if (config.screenshotDir) {
      const name = spec.path.replace(/\.html$/, "").replace(/[\/]/g, "_") + ".png";
      const file = path.join(config.screenshotDir, name);
      await page.screenshot({ path: file, fullPage: spec.kind !== "reference" });
      result.screenshot = file;
    }
  } catch (err) {
    result.errors.push(String(err && err.stack || err));
  }
  result.ms = Date.now() - started;
  result.requestCount = result.requests.length;
  delete result.requests;
  await context.close();
  return result;
}

// Heaviest pages first, spread over a few tabs (the renderer is CPU-bound; more tabs than cores do not help).
const queue = config.pages.map((spec, index) => ({ spec, index }))
  .sort((a, b) => ((b.spec.operations || []).length + (b.spec.webhooks || []).length)
                - ((a.spec.operations || []).length + (a.spec.webhooks || []).length));
const results = new Array(config.pages.length);
try {
  const workers = Array.from({ length: Math.max(1, config.concurrency || 2) }, async () => {
    for (let item = queue.shift(); item; item = queue.shift()) results[item.index] = await checkPage(item.spec);
  });
  await Promise.all(workers);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ results }, null, 1));
