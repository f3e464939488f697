// Opens the pages of a running `infodisent serve` in headless Chromium, then picks an image in the
// upload page's file input and waits for its explanation. Prints one JSON object: pages visited,
// images checked, the class the explanation names, console errors, failed requests and images
// that did not render. With a third argument, saves a screenshot of each page into that folder.
// Usage: node check-viewer.mjs URL IMAGE [SCREENSHOT_DIR]
import { chromium } from "playwright-core";
import { join } from "node:path";

const [url, image, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { pages: 0, images: 0, explained: "", consoleErrors: [], failedRequests: [], brokenImages: [] };
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });

async function visit(path, name, act) {
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(`${path}: ${m.text()}`); });
  page.on("pageerror", (e) => result.consoleErrors.push(`${path}: ${e.message}`));
  page.on("requestfailed", (r) => result.failedRequests.push(`${path}: ${r.url()}`));
  await page.goto(new URL(path, url).href, { waitUntil: "load" });
  if (act) await act(page);
  const imgs = await page.$$eval("img", (els) => els.map((e) => ({ src: e.getAttribute("src"), ok: e.complete && e.naturalWidth > 0 })));
  result.images += imgs.length;
  for (const i of imgs) if (!i.ok) result.brokenImages.push(`${path}: ${i.src}`);
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  result.pages += 1;
  const links = await page.$$eval("a[href]", (els) => els.map((e) => e.href));
  await page.close();
  return links;
}

await visit("./", "home");
await visit("0/", "classes");
const classLinks = await visit("0/class/0", "class");
const channel = classLinks.find((h) => h.includes("/channel/"));
await visit(new URL(channel).pathname.slice(1), "channel");
await visit("0/image/0", "image");
await visit("explain", "explain", async (page) => {
  await page.setInputFiles("#file", image);
  await page.waitForSelector(".explanation img.figure", { timeout: 60000 });
  await page.waitForFunction(() => [...document.querySelectorAll(".explanation img")].every((i) => i.complete), null, { timeout: 60000 });
  result.explained = await page.$eval(".explanation p b", (e) => e.textContent);
});
await browser.close();
console.log(JSON.stringify(result));
