// Opens every HTML page of a report folder from disk in headless Chromium (no server) and prints
// one JSON object: pages visited, console errors, failed requests and images that did not render.
// With a second argument, saves a screenshot of each top-level page into that folder.
// Usage: node check-report.mjs REPORT_DIR [SCREENSHOT_DIR]
import { chromium } from "playwright-core";
import { readdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(process.argv[2] ?? ".");
const shots = process.argv[3];
const pages = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".html")) pages.push(p);
  }
})(root);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { pages: 0, images: 0, consoleErrors: [], failedRequests: [], brokenImages: [] };
const context = await browser.newContext({ viewport: { width: 1200, height: 1500 } });
for (const file of pages) {
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(`${file}: ${m.text()}`); });
  page.on("pageerror", (e) => result.consoleErrors.push(`${file}: ${e.message}`));
  page.on("requestfailed", (r) => result.failedRequests.push(`${file}: ${r.url()}`));
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  const imgs = await page.$$eval("img", (els) => els.map((e) => ({ src: e.getAttribute("src"), ok: e.complete && e.naturalWidth > 0 })));
  result.images += imgs.length;
  for (const i of imgs) if (!i.ok) result.brokenImages.push(`${file}: ${i.src}`);
  if (shots && dirname(file) === root) {
    await page.screenshot({ path: join(shots, basename(file, ".html") + ".png"), fullPage: false });
  }
  result.pages += 1;
  await page.close();
}
await browser.close();
console.log(JSON.stringify(result));
