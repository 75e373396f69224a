// Loads the dashboard of a running candlecache in headless Chromium and checks that it
// works: candles drawn (pixels), a timeframe switch fetches and redraws, zoom fetches a
// wider range, the health panel shows figures, and the console stays clean.
// Usage: node dashboard_check.cjs BASE_URL SCREENSHOT.png   (playwright-core on NODE_PATH)
"use strict";

const { chromium } = require("playwright-core");

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error("usage: node dashboard_check.cjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}

const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };

// Pixels of the up and down candle colours on the chart canvas.
const countPixels = () => {
  const c = document.getElementById("chart");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let up = 0, down = 0;
  const near = (i, r, g, b) => Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 24;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 200) continue;
    if (near(i, 38, 166, 154)) up++;
    else if (near(i, 239, 83, 80)) down++;
  }
  return { up, down };
};
const chartState = () => ({ ...document.getElementById("chart").dataset });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const result = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const errors = [];
    page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
    page.on("response", (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`); });
    const ohlc = [];
    page.on("request", (r) => { if (r.url().includes("/api/crypto/ohlc")) ohlc.push(r.url()); });

    await page.goto(base + "/", { waitUntil: "networkidle" });
    await page.waitForFunction(() => +document.getElementById("chart").dataset.candles > 0, null, { timeout: 15000 });
    const first = await page.evaluate(chartState);
    const firstPixels = await page.evaluate(countPixels);
    result.first = { ...first, ...firstPixels };
    check(firstPixels.up > 50 && firstPixels.down > 50, `few candle pixels at first: ${JSON.stringify(firstPixels)}`);

    // Switch to another timeframe: a request for it, and a redraw with its candles.
    // 5m: the demo's XRPETH has a few 5-minute stretches without trades.
    const target = first.timeframe === "5m" ? "1m" : "5m";
    const asked = page.waitForRequest((r) => r.url().includes("/api/crypto/ohlc") && r.url().includes(`timeframe=${target}`));
    await page.click(`#timeframes button[data-tf="${target}"]`);
    await asked;
    await page.waitForFunction((tf) => {
      const d = document.getElementById("chart").dataset;
      return d.timeframe === tf && +d.candles > 0 && +d.fetches >= 2;
    }, target, { timeout: 15000 });
    const second = await page.evaluate(chartState);
    const secondPixels = await page.evaluate(countPixels);
    result.switched = { ...second, ...secondPixels };
    check(second.candles !== first.candles || second.timeframe !== first.timeframe, "nothing changed on switching");
    check(secondPixels.up > 20 && secondPixels.down > 20, `few candle pixels after switching: ${JSON.stringify(secondPixels)}`);
    check(+second.gaps > 0, `the demo's ${target} candles have gaps, and none were drawn`);

    // Zoom out over the chart: a wider range is fetched and more candles drawn.
    const box = await page.locator("#chart").boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const before = ohlc.length;
    for (let i = 0; i < 4; i++) await page.mouse.wheel(0, 400);
    await page.waitForFunction((n) => +document.getElementById("chart").dataset.fetches > n, +second.fetches, { timeout: 15000 });
    const zoomed = await page.evaluate(chartState);
    result.zoomed = zoomed;
    check(ohlc.length > before, "zooming out fetched nothing");
    check(+zoomed.candles >= +second.candles, `zooming out drew fewer candles: ${zoomed.candles} < ${second.candles}`);

    // Pan by dragging: the view moves (and may fetch).
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 300, box.y + box.height / 2, { steps: 10 });
    await page.mouse.up();

    // The health panel fills in from the performance endpoints.
    await page.waitForFunction(() => {
      const t = (id) => document.getElementById(id).textContent;
      return /\d/.test(t("hit-rate")) && /(Excellent|Good|Warning|Critical)/.test(t("mem-health")) &&
        /B/.test(t("mem-rss")) && document.querySelectorAll("#cache-table tbody tr").length >= 2 &&
        document.querySelectorAll("#http-table tbody tr").length >= 1;
    }, null, { timeout: 15000 });
    result.health = await page.evaluate(() => ({
      level: document.getElementById("mem-health").textContent,
      rss: document.getElementById("mem-rss").textContent,
      hit_rate: document.getElementById("hit-rate").textContent,
      namespaces: document.querySelectorAll("#cache-table tbody tr").length - 1,
      routes: document.querySelectorAll("#http-table tbody tr").length,
    }));
    // Double-click goes back to the latest candles, for the picture; let a refresh or two
    // pass, so an error in the periodic refresh would show.
    await page.mouse.dblclick(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForTimeout(3500);
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.4);
    await page.screenshot({ path: shot });
    result.requests = ohlc.length;
    result.errors = errors;
    check(errors.length === 0, `browser errors: ${errors.join("; ")}`);
  } catch (e) {
    problems.push(`check failed: ${e.message}`);
  } finally {
    await browser.close();
  }
  result.problems = problems;
  console.log(JSON.stringify(result));
  process.exit(problems.length ? 1 : 0);
})();
