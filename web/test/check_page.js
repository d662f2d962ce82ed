// Opens a page of `leakscope report --format html` in Debian's headless Chromium (through
// playwright-core, pinned in web/package.json) and does what a person would: waits for the
// first drawing, moves the snapshot slider, clicks the memory chart, switches to growth
// between two moments, searches, takes a screenshot. Prints what it saw as one JSON object
// for tests/e2e/test_html_report.py to judge; exits non-zero only when the browser itself fails.
//   node check_page.js PAGE.html SCREENSHOT.png SEARCH_TERM
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

// These flags keep Chromium off the network (this machine has none) and quick to start.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// The flame graph as drawn: the chosen moment, its total and every frame's name.
function flameState() {
  const f = document.getElementById("flame");
  const labels = [...f.querySelectorAll(".d3-flame-graph-label")].map((e) => e.textContent).filter((t) => t);
  return {
    at: Number(f.dataset.at), from: Number(f.dataset.from), view: f.dataset.view, total: Number(f.dataset.total),
    names: [...f.querySelectorAll("g.frame")].map((g) => g.getAttribute("name")),
    labels: labels.length,
    caption: document.getElementById("flame-caption").textContent,
    search: document.getElementById("search-caption").textContent,
    highlighted: [...f.querySelectorAll("g.frame rect")].filter((r) => r.getAttribute("fill") === "#E600E6").length,
  };
}

async function main() {
  const [pagePath, shotPath, term] = process.argv.slice(2);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "leakscope-chromium-"));
  const out = { console_errors: [], page_errors: [], requests: [], failed_requests: [], dialogs: [] };
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium", headless: true, args: ARGS, viewport: { width: 1280, height: 900 },
    timeout: 30000,
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const url = "file://" + path.resolve(pagePath);
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.page_errors.push(String(e)));
    page.on("request", (r) => { if (r.url() !== url) out.requests.push(r.url()); });
    page.on("requestfailed", (r) => out.failed_requests.push(r.url()));
    page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss().catch(() => {}); });

    // Navigation to the load event, then to the first drawing of the flame graph (labels in).
    await page.goto(url, { waitUntil: "load", timeout: 30000 });
    await page.waitForFunction(() => {
      const ok = document.body.dataset.ready === "1" &&
        (!document.getElementById("flame") ||
         [...document.querySelectorAll("#flame .d3-flame-graph-label")].some((e) => e.textContent));
      if (ok && window.drawnAt === undefined) window.drawnAt = performance.now();
      return ok;
    }, null, { timeout: 30000 });
    out.timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      return { load_event_ms: nav.loadEventEnd, first_render_ms: window.drawnAt };
    });
    out.scripts = await page.evaluate(() => document.scripts.length);
    out.title = await page.title();
    out.text = await page.evaluate(() => {
      const t = (id) => (document.getElementById(id) || { innerText: "" }).innerText.slice(0, 20000);
      return { verdict: t("verdict"), leaks: t("leaks"), findleaks: t("findleaks"), memory: t("memory"),
        retention: t("retention"), h1: document.querySelector("h1").textContent };
    });
    out.legend = await page.evaluate(() => [...document.querySelectorAll("#timeline-chart text.legend")].map((e) => e.textContent));
    const hasFlame = await page.evaluate(() => !!document.getElementById("flame"));
    if (hasFlame) {
      out.end = await page.evaluate(flameState);
      // The slider's first position, from the keyboard.
      await page.focus("#at");
      await page.keyboard.press("Home");
      await page.waitForFunction(() => document.getElementById("flame").dataset.at === "0");
      out.first = await page.evaluate(flameState);
      // A click in the middle of the memory chart chooses the moment nearest to it.
      const box = await page.locator("#timeline-chart svg").boundingBox();
      if (box) {
        await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
        await page.waitForTimeout(50);
        out.clicked = await page.evaluate(flameState);
      }
      // Growth from the first moment to the last.
      await page.selectOption("#view", "growth");
      await page.focus("#at");
      await page.keyboard.press("End");
      await page.waitForFunction(() => document.getElementById("flame").dataset.view === "growth");
      out.growth = await page.evaluate(flameState);
      await page.selectOption("#view", "live");
      if (term) {
        await page.fill("#search", term);
        await page.waitForTimeout(50);
        out.search = await page.evaluate(flameState);
      }
      await page.selectOption("#shape", "callers");
      await page.waitForTimeout(50);
      out.callers = await page.evaluate(flameState);
      await page.selectOption("#shape", "flame");
    }
    await page.screenshot({ path: shotPath, fullPage: true });
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write("check_page: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
