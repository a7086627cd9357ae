// Fills in and submits the sandbox's enrollment page in headless Chromium, as a patient would.
// usage: node enroll_browser.mjs '{"url": ..., "chromium": ..., "card": ..., "screenshot": ...}'
// prints JSON: {status, title, text, consoleErrors}
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const browser = await chromium.launch({ executablePath: config.chromium, args: LAUNCH_ARGS, headless: true });
const page = await browser.newPage();
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
await page.goto(config.url);
await page.fill("input[name=first_name]", "Pat");
await page.fill("input[name=last_name]", "Browser");
await page.fill("input[name=email]", "pat.browser@example.com");
await page.fill("input[name=phone]", "+15125550199");
await page.fill("input[name=date_of_birth]", "1990-05-15");
await page.fill("input[name=state]", "TX");
// Every select: the first real option; every question: a plain answer.
for (const select of await page.$$("select")) {
  const values = await select.$$eval("option", (os) => os.map((o) => o.value).filter((v) => v));
  await select.selectOption(values[0]);
}
for (const field of await page.$$("textarea, input[name^=q_]")) await field.fill("None");
await page.fill("input[name=card_number]", config.card);
await page.fill("input[name=card_expiry]", "12/30");
await page.fill("input[name=card_cvc]", "123");
const [response] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
if (config.screenshot) await page.screenshot({ path: config.screenshot, fullPage: true });
console.log(JSON.stringify({
  status: response ? response.status() : null,
  title: await page.title(),
  text: await page.innerText("body"),
  consoleErrors,
}));
await browser.close();
