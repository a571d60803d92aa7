// The decision explorer in a real browser: Debian's chromium, headless, driven by
// playwright-core. Run by tests/e2e/explorer.rs against a gateway it started and sent traffic
// to: node explorer.mjs <admin base URL> <screenshot path> <client jkt>.
// Prints one JSON line; exits 1 with the reason on the first failed expectation.
import { chromium } from "playwright-core";

const [base, screenshot, jkt] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

function fail(msg) {
  console.error("explorer browser test: " + msg);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for chromium's sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => {
    problems.push("a dialog opened: " + d.message());
    d.dismiss().catch(() => {});
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push("console error: " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  const external = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) external.push(r.url());
  });

  const resp = await page.goto(base + "/explorer");
  if (!resp || resp.status() !== 200) fail("GET /explorer: " + (resp && resp.status()));
  const csp = resp.headers()["content-security-policy"] || "";
  if (!csp.includes("default-src 'none'") || !csp.includes("script-src 'self'")) fail("CSP: " + csp);
  await page.waitForSelector("body[data-loaded='1']", { timeout: 10000 });

  // A refused request's failing check, with expected vs actual.
  const refused = page.locator("details.decision[data-reason='htm']").first();
  await refused.locator("summary").click();
  const row = refused.locator("tr.check.fail[data-check='htm']");
  if ((await row.count()) !== 1) fail("no failing htm check row");
  const expected = (await row.locator("td.expected").textContent()).trim();
  const actual = (await row.locator("td.actual").textContent()).trim();
  if (expected !== "GET" || actual !== "POST") fail(`htm expected/actual: ${expected} / ${actual}`);
  const failedRows = await refused.locator("tr.check.fail").count();
  if (failedRows !== 1) fail(`exactly one failing check expected, got ${failedRows}`);

  // The proof whose claims carry HTML: shown as text, nothing executed or inserted.
  const xss = page.locator("details.decision[data-reason='htu']").first();
  await xss.locator("summary").click();
  const claims = await xss.locator(".pane pre.claims").first().textContent();
  if (!claims.includes("<script>") || !claims.includes("<img src=x onerror=")) {
    fail("the XSS claims are not shown as text: " + claims);
  }
  const injected = await page.evaluate(() => ({
    flag: window.__xss === undefined ? null : window.__xss,
    imgs: document.querySelectorAll("img").length,
    scripts: document.querySelectorAll("script").length,
  }));
  if (injected.flag !== null || injected.imgs !== 0 || injected.scripts !== 1) {
    fail("markup from a proof reached the DOM: " + JSON.stringify(injected));
  }

  // Filtering: by outcome, by reason, by key.
  const outcomes = async () =>
    page.$$eval("details.decision", (ds) => ds.map((d) => d.dataset.outcome + "/" + d.dataset.reason));
  const settle = () => page.waitForTimeout(400);
  const all = (await outcomes()).length;
  await page.selectOption("#f-outcome", "forwarded");
  await settle();
  const fwd = await outcomes();
  if (!fwd.length || fwd.some((o) => !o.startsWith("forwarded/"))) fail("outcome filter: " + fwd);
  await page.selectOption("#f-outcome", "");
  await page.fill("#f-reason", "htm");
  await settle();
  const htm = await outcomes();
  if (htm.length !== 1 || htm[0] !== "invalid_dpop_proof/htm") fail("reason filter: " + htm);
  await page.fill("#f-reason", "");
  await page.fill("#f-jkt", jkt);
  await settle();
  const mine = await page.$$eval("details.decision", (ds) => ds.length);
  const thief = await page.$$eval("details.decision[data-reason='binding']", (ds) => ds.length);
  if (!mine || mine >= all || thief !== 0) fail(`jkt filter: ${mine} of ${all}, binding ${thief}`);
  await page.click("#f-clear");
  await settle();

  // The screenshot: only the refused request opened, from the top of the page.
  await page.$$eval("details.decision", (ds) => ds.forEach((d) => (d.open = false)));
  const again = page.locator("details.decision[data-reason='htm']").first();
  await again.locator("summary").click();
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });

  if (external.length) fail("requests outside the admin listener: " + external.join(", "));
  if (problems.length) fail(problems.join("; "));
  console.log(JSON.stringify({ ok: true, decisions: all, forwarded: fwd.length, screenshot }));
} finally {
  await browser.close();
}
