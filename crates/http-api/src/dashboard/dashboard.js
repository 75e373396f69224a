// candlecache dashboard: a candlestick chart over /api/crypto/ohlc and a health panel over
// /api/performance/*. No dependencies; times are UTC.
"use strict";

const TF_MS = {
  "1s": 1e3, "1m": 6e4, "3m": 18e4, "5m": 3e5, "15m": 9e5, "30m": 18e5, "1h": 36e5,
  "2h": 72e5, "4h": 144e5, "6h": 216e5, "8h": 288e5, "12h": 432e5, "1d": 864e5,
  "3d": 2592e5, "1w": 6048e5, "1M": 2592e6,
};
const SHOWN = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"];
const MAX_CANDLES = 4000; // widest zoom, in candles
const MIN_CANDLES = 10;   // narrowest zoom
const COLORS = { up: "#26a69a", down: "#ef5350", grid: "#232b38", axis: "#8a96a8", gap: "#5a6578" };

const $ = (id) => document.getElementById(id);
const state = {
  markets: [], symbol: null, tf: null,
  view: { start: 0, end: 0 },
  data: { rows: [], gaps: [], from: 0, to: 0, key: "" },
  seq: 0, fetches: 0, timer: 0, hover: null,
};

// ---------- formatting ----------

function fmtBytes(b) {
  if (b == null) return "–";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(b) >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return (i === 0 ? b.toFixed(0) : b.toFixed(1)) + " " + u[i];
}
function fmtPct(x) { return (x * 100).toFixed(1) + " %"; }
function pad(n) { return String(n).padStart(2, "0"); }
function fmtTime(ms, withDate) {
  const d = new Date(ms);
  const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return withDate ? `${date} ${time}` : time;
}
function decimalsFor(step) {
  return Math.min(10, Math.max(0, 1 - Math.floor(Math.log10(step))));
}

// ---------- data ----------

async function getJson(url) {
  const r = await fetch(url, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok || !body || body.success === false) {
    const msg = body && body.error ? body.error.message : `HTTP ${r.status}`;
    throw new Error(msg);
  }
  return body;
}

function setStatus(text) { $("status").textContent = text; }

function scheduleFetch() {
  clearTimeout(state.timer);
  state.timer = setTimeout(loadVisible, 120);
}

async function loadVisible() {
  const tf = TF_MS[state.tf];
  const span = state.view.end - state.view.start;
  // Half a screen either side, so a short pan needs no request.
  const from = Math.floor((state.view.start - span / 2) / tf) * tf;
  const to = Math.ceil((state.view.end + span / 2) / tf) * tf;
  const key = `${state.symbol}|${state.tf}`;
  if (state.data.key === key && from >= state.data.from && to <= state.data.to) return;
  const seq = ++state.seq;
  const limit = Math.min(100000, Math.ceil((to - from) / tf) + 1);
  const { name, kind, exchange } = seriesOf(state.symbol);
  const kindParams = { spot: "", futures: "&market=futures", mark: "&market=futures&price=mark" }[kind] || "";
  const exchangeParam = exchange === "binance" ? "" : `&exchange=${exchange}`;
  const url = `/api/crypto/ohlc?symbol=${encodeURIComponent(name)}&timeframe=${state.tf}${kindParams}${exchangeParam}` +
    `&start=${Math.max(0, from)}&end=${to}&limit=${limit}&format=json`;
  setStatus("loading…");
  try {
    const body = await getJson(url);
    if (seq !== state.seq) return; // a newer request is on its way
    state.fetches++;
    state.data = { rows: body.data.rows, gaps: body.meta.gaps || [], from, to, key };
    const m = body.meta;
    setStatus(`${m.rows} candles from ${m.cached ? "cache" : m.source}` +
      (m.resampled_from ? `, resampled from ${m.resampled_from}` : ""));
    draw();
  } catch (e) {
    if (seq === state.seq) setStatus(`could not load candles: ${e.message}`);
  }
}

// ---------- chart ----------

const canvas = $("chart");
const ctx = canvas.getContext("2d");
const PAD = { left: 8, right: 78, top: 28, bottom: 24 };

function layout() {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const plotW = w - PAD.left - PAD.right;
  const plotH = h - PAD.top - PAD.bottom;
  const priceH = Math.round(plotH * 0.76);
  return { w, h, plotW, priceH, volTop: PAD.top + priceH + 8, volH: plotH - priceH - 8 };
}

function niceStep(range, count) {
  const raw = range / count;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

const TIME_STEPS = [6e4, 3e5, 9e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5, 6048e5, 2592e6, 31536e6];

function draw() {
  const L = layout();
  const { start, end } = state.view;
  const span = end - start;
  const tf = TF_MS[state.tf];
  const x = (t) => PAD.left + ((t - start) / span) * L.plotW;
  ctx.clearRect(0, 0, L.w, L.h);

  const rows = state.data.key === `${state.symbol}|${state.tf}`
    ? state.data.rows.filter((r) => r[0] + tf > start && r[0] < end) : [];
  let lo = Infinity, hi = -Infinity, vmax = 0;
  for (const r of rows) { lo = Math.min(lo, r[3]); hi = Math.max(hi, r[2]); vmax = Math.max(vmax, r[5]); }
  if (!rows.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += Math.abs(hi) * 0.01 || 1; lo -= Math.abs(lo) * 0.01 || 1; }
  const padY = (hi - lo) * 0.06;
  lo -= padY; hi += padY;
  const y = (p) => PAD.top + (1 - (p - lo) / (hi - lo)) * L.priceH;

  // Grid and price axis.
  ctx.font = "11px ui-monospace, monospace";
  ctx.textBaseline = "middle";
  const pstep = niceStep(hi - lo, 6);
  const dec = decimalsFor(pstep);
  ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.axis; ctx.lineWidth = 1;
  for (let p = Math.ceil(lo / pstep) * pstep; p <= hi; p += pstep) {
    const yy = Math.round(y(p)) + 0.5;
    ctx.beginPath(); ctx.moveTo(PAD.left, yy); ctx.lineTo(PAD.left + L.plotW, yy); ctx.stroke();
    ctx.fillText(p.toFixed(dec), PAD.left + L.plotW + 6, yy);
  }

  // Time axis: the smallest step that leaves 110 px between labels.
  const tstep = TIME_STEPS.find((s) => (s / span) * L.plotW >= 110) || TIME_STEPS[TIME_STEPS.length - 1];
  ctx.textBaseline = "top"; ctx.textAlign = "center";
  for (let t = Math.ceil(start / tstep) * tstep; t < end; t += tstep) {
    const xx = Math.round(x(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(xx, PAD.top); ctx.lineTo(xx, L.volTop + L.volH); ctx.stroke();
    const midnight = t % 864e5 === 0;
    const label = tstep >= 864e5 ? fmtTime(t, true).slice(0, 10)
      : midnight ? fmtTime(t, true).slice(5, 10) : fmtTime(t, false);
    ctx.fillText(label, xx, L.volTop + L.volH + 6);
  }
  ctx.textAlign = "left";

  // Gaps: hatched bands where the store has no candles, between the market's first and
  // last candle (before and after them there is simply no history).
  const ms = market();
  const firstT = Math.min(...ms.map((m) => m.first_time));
  const lastT = Math.max(...ms.map((m) => m.last_time)) + TF_MS[ms[0] ? ms[0].timeframe : state.tf];
  const gaps = state.data.gaps
    .map(([a, b]) => [Math.max(a, firstT), Math.min(b, lastT)])
    .filter(([a, b]) => a < b && b > start && a < end);
  ctx.save();
  ctx.beginPath(); ctx.rect(PAD.left, PAD.top, L.plotW, L.volTop + L.volH - PAD.top); ctx.clip();
  ctx.strokeStyle = COLORS.gap; ctx.globalAlpha = 0.35;
  for (const [a, b] of gaps) {
    const x0 = Math.max(PAD.left, x(a)), x1 = Math.min(PAD.left + L.plotW, x(b));
    for (let k = x0 - L.priceH; k < x1; k += 8) {
      ctx.beginPath();
      ctx.moveTo(Math.max(k, x0), PAD.top + L.priceH - Math.max(0, x0 - k));
      ctx.lineTo(Math.min(k + L.priceH, x1), PAD.top + L.priceH - Math.min(L.priceH, x1 - k));
      ctx.stroke();
    }
  }
  ctx.restore();

  // Candles and volume.
  const bodyW = Math.max(1, (tf / span) * L.plotW * 0.7);
  let drawn = 0;
  for (const r of rows) {
    const [t, o, h, l, c, v] = r;
    const cx = x(t + tf / 2);
    const up = c >= o;
    ctx.fillStyle = ctx.strokeStyle = up ? COLORS.up : COLORS.down;
    ctx.beginPath(); ctx.moveTo(Math.round(cx) + 0.5, y(h)); ctx.lineTo(Math.round(cx) + 0.5, y(l)); ctx.stroke();
    const top = y(Math.max(o, c)), bottom = y(Math.min(o, c));
    ctx.fillRect(cx - bodyW / 2, top, bodyW, Math.max(1, bottom - top));
    if (vmax > 0) {
      const vh = (v / vmax) * L.volH;
      ctx.globalAlpha = 0.5;
      ctx.fillRect(cx - bodyW / 2, L.volTop + L.volH - vh, bodyW, vh);
      ctx.globalAlpha = 1;
    }
    drawn++;
  }
  canvas.dataset.candles = String(drawn);
  canvas.dataset.timeframe = state.tf;
  canvas.dataset.symbol = state.symbol;
  canvas.dataset.fetches = String(state.fetches);
  canvas.dataset.gaps = String(gaps.length);

  // Readout of the candle under the pointer, else of the last one.
  const hovered = state.hover == null ? null
    : rows.find((r) => r[0] <= state.hover && state.hover < r[0] + tf);
  const r = hovered || rows[rows.length - 1];
  $("readout").textContent = r
    ? `${state.symbol} ${state.tf}  ${fmtTime(r[0], true)} UTC  O ${r[1]}  H ${r[2]}  L ${r[3]}  C ${r[4]}  V ${r[5]}`
    : `${state.symbol || ""} ${state.tf || ""}: no candles here`;
}

// ---------- interaction ----------

function clampView(start, end) {
  const tf = TF_MS[state.tf];
  let span = Math.min(Math.max(end - start, MIN_CANDLES * tf), MAX_CANDLES * tf);
  const mid = (start + end) / 2;
  return { start: mid - span / 2, end: mid + span / 2 };
}

let drag = null;
canvas.addEventListener("pointerdown", (e) => {
  drag = { x: e.clientX, view: { ...state.view } };
  canvas.setPointerCapture(e.pointerId);
  canvas.classList.add("dragging");
});
canvas.addEventListener("pointermove", (e) => {
  const L = layout();
  const span = state.view.end - state.view.start;
  const rect = canvas.getBoundingClientRect();
  state.hover = state.view.start + ((e.clientX - rect.left - PAD.left) / L.plotW) * span;
  if (drag) {
    const dt = ((e.clientX - drag.x) / L.plotW) * span;
    state.view = { start: drag.view.start - dt, end: drag.view.end - dt };
    scheduleFetch();
  }
  draw();
});
function endDrag() { drag = null; canvas.classList.remove("dragging"); }
canvas.addEventListener("pointerup", endDrag);
canvas.addEventListener("pointercancel", endDrag);
canvas.addEventListener("pointerleave", () => { state.hover = null; draw(); });
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const L = layout();
  const rect = canvas.getBoundingClientRect();
  const f = Math.min(1, Math.max(0, (e.clientX - rect.left - PAD.left) / L.plotW));
  const { start, end } = state.view;
  const at = start + f * (end - start);
  const k = Math.exp(e.deltaY * 0.0015);
  const span = (end - start) * k;
  const v = clampView(at - f * span, at + (1 - f) * span);
  // Keep the time under the pointer where it was.
  const s = v.end - v.start;
  state.view = { start: at - f * s, end: at + (1 - f) * s };
  draw();
  scheduleFetch();
}, { passive: false });
canvas.addEventListener("dblclick", () => { resetView(); draw(); scheduleFetch(); });
window.addEventListener("resize", draw);

/// A series' select value: the symbol for Binance spot (as before), `SYMBOL:futures` or
/// `SYMBOL:mark` for the futures market's trade and mark prices, with `@exchange` after
/// it on another exchange (`BTCUSDT:futures@bybit`; the page's hash keeps `/` for the
/// timeframe).
function seriesValue(m) {
  const name = !m.kind || m.kind === "spot" ? m.symbol : `${m.symbol}:${m.kind}`;
  return !m.exchange || m.exchange === "binance" ? name : `${name}@${m.exchange}`;
}

function seriesOf(value) {
  const [rest, exchange] = (value || "").split("@");
  const [name, kind] = rest.split(":");
  return { name, kind: kind || "spot", exchange: exchange || "binance" };
}

function market() {
  return state.markets.filter((m) => seriesValue(m) === state.symbol);
}

function resetView() {
  const ms = market();
  const tf = TF_MS[state.tf];
  const last = Math.max(...ms.map((m) => m.last_time));
  const first = Math.min(...ms.map((m) => m.first_time));
  const end = Math.floor(last / tf) * tf + tf;
  const span = Math.min(Math.max(end - first, MIN_CANDLES * tf), 300 * tf);
  state.view = { start: end - span, end: end + tf * 2 };
}

/// The coarsest shown timeframe that still gives at least 150 candles over the history.
function defaultTimeframe() {
  const ms = market();
  const span = Math.max(...ms.map((m) => m.last_time)) - Math.min(...ms.map((m) => m.first_time));
  const fits = SHOWN.filter((tf) => span / TF_MS[tf] >= 150);
  return fits.length ? fits[fits.length - 1] : ms.map((m) => m.timeframe).find((t) => TF_MS[t]) || "1h";
}

function setTimeframe(tf) {
  state.tf = tf;
  for (const b of $("timeframes").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.tf === tf));
  }
  location.hash = `${state.symbol}/${tf}`;
  resetView();
  draw();
  loadVisible();
}

function setSymbol(symbol, tf) {
  state.symbol = symbol;
  $("symbol").value = symbol;
  setTimeframe(tf && TF_MS[tf] ? tf : defaultTimeframe());
}

async function init() {
  for (const tf of SHOWN) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = tf; b.dataset.tf = tf;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => setTimeframe(tf));
    $("timeframes").appendChild(b);
  }
  $("symbol").addEventListener("change", (e) => setSymbol(e.target.value));
  refreshHealth();
  setInterval(refreshHealth, 3000);
  try {
    state.markets = (await getJson("/api/crypto/markets")).data;
  } catch (e) {
    setStatus(`could not list markets: ${e.message}`);
    return;
  }
  const symbols = [...new Set(state.markets.map(seriesValue))].sort();
  if (!symbols.length) {
    setStatus("no candles stored yet: import a file or fetch from an upstream");
    draw();
    return;
  }
  for (const s of symbols) {
    const o = document.createElement("option");
    const { name, kind, exchange } = seriesOf(s);
    o.value = s;
    const label = kind === "spot" ? name : `${name} (${kind === "mark" ? "futures mark" : "futures"})`;
    o.textContent = exchange === "binance" ? label : `${exchange}: ${label}`;
    $("symbol").appendChild(o);
  }
  const [hs, htf] = decodeURIComponent(location.hash.slice(1)).split("/");
  setSymbol(symbols.includes(hs) ? hs : symbols[0], htf);
}

// ---------- health ----------

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.appendChild(td);
}

function fillTable(id, rows) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map((cols) => {
    const tr = document.createElement("tr");
    for (const c of cols) cell(tr, c);
    return tr;
  }));
}

function list(id, items) {
  $(id).replaceChildren(...items.map((t) => {
    const li = document.createElement("li");
    li.textContent = t;
    return li;
  }));
}

function spark(history, limit) {
  const c = $("mem-spark");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (history.length < 2) {
    g.fillStyle = "#8a96a8"; g.font = "12px system-ui, sans-serif";
    g.fillText("history: collecting samples…", 4, 28);
    return;
  }
  const max = Math.max(...history.map((p) => p.private_bytes)) * 1.25;
  const t0 = history[0].at_ms, t1 = history[history.length - 1].at_ms;
  const px = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (c.width - 2) + 1;
  const py = (v) => c.height - 2 - (v / max) * (c.height - 4);
  if (limit * 0.8 <= max) { // the warning level, when memory comes near it
    g.strokeStyle = "#ef6c00"; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(0, py(limit * 0.8)); g.lineTo(c.width, py(limit * 0.8)); g.stroke();
  }
  g.setLineDash([]); g.strokeStyle = "#4f9cf9"; g.beginPath();
  history.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, px(p.at_ms), py(p.private_bytes)));
  g.stroke();
}

async function refreshHealth() {
  let stats, mem;
  try {
    [stats, mem] = await Promise.all([getJson("/api/performance/stats"), getJson("/api/performance/memory")]);
  } catch (e) {
    setStatus(`health figures unavailable: ${e.message}`);
    return;
  }
  const s = stats.data, m = mem.data;
  const badge = $("mem-health");
  badge.textContent = m.health;
  badge.className = `badge ${m.health}`;
  $("mem-rss").textContent = `${fmtBytes(m.private_bytes)} private (${m.usage_pct.toFixed(1)} % of limit), ${fmtBytes(m.rss_bytes)} with mapped files`;
  $("mem-limit").textContent = fmtBytes(m.limit_bytes);
  $("mem-trend").textContent = `${m.trend_mb_per_min >= 0 ? "+" : ""}${m.trend_mb_per_min.toFixed(2)} MB/min` +
    ` over ${m.window_minutes < 1 ? (m.window_minutes * 60).toFixed(0) + " s" : m.window_minutes.toFixed(0) + " min"}` +
    (m.leak_suspected ? " — leak suspected" : "");
  $("mem-stability").textContent = `${m.stability_score} / 100`;
  $("mem-reclaimed").textContent = `${fmtBytes(m.reclaimed_bytes_total)} in ${m.reclaim_count} actions`;
  spark(m.history, m.limit_bytes);
  list("mem-advice", m.recommendations);

  const c = s.cache;
  $("hit-rate").textContent = fmtPct(c.total.hit_rate);
  fillTable("cache-table", Object.entries(c.namespaces).map(([name, n]) => [
    name, n.hits_hot, n.hits_warm, n.misses, fmtPct(n.hit_rate),
    fmtBytes(n.bytes_hot), fmtBytes(n.bytes_warm), fmtBytes(n.bytes_saved),
    `${n.admitted} / ${n.rejected_by_admission}`,
  ]).concat([["total", c.total.hits_hot, c.total.hits_warm, c.total.misses, fmtPct(c.total.hit_rate),
    fmtBytes(c.total.bytes_hot), fmtBytes(c.total.bytes_warm), fmtBytes(c.total.bytes_saved),
    `${c.total.admitted} / ${c.total.rejected_by_admission}`]]));

  const q = s.queries;
  $("q-patterns").textContent = `${q.patterns.length} (${q.patterns.reduce((a, p) => a + p.count, 0)} executions)`;
  $("q-slow").textContent = String(q.slow.length);
  const pool = s.pools.sqlite;
  $("q-pool").textContent = `${pool.in_use} in use, ${pool.idle} idle, ${pool.waiting} waiting (wait p99 ${pool.wait_p99_ms.toFixed(2)} ms)`;
  list("q-slow-list", q.slow.slice(-5).reverse().map((x) => `${x.duration_ms.toFixed(0)} ms: ${x.pattern}`));
  fillTable("http-table", Object.entries(s.http).map(([route, h]) => [
    route, h.requests, h.p50_ms.toFixed(2), h.p99_ms.toFixed(2),
  ]));

  const up = s.upstream;
  const box = $("upstream");
  if (!up) {
    box.textContent = "No upstream configured: only stored candles are served (serve --upstream URL to backfill).";
  } else {
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = up.base_url;
    box.appendChild(p);
    const t = document.createElement("table");
    t.innerHTML = "<thead><tr><th>host</th><th>requests</th><th>retries</th><th>errors</th><th>429/418</th><th>p99 ms</th></tr></thead><tbody></tbody>";
    t.id = "upstream-table";
    box.appendChild(t);
    fillTable("upstream-table", up.hosts.map((h) => [
      h.host, h.requests, h.retries, h.errors, h.rate_limited, h.latency_p99_ms.toFixed(1),
    ]));
    // The live edge: REST refreshes, and the upstream's streams when configured.
    const live = document.createElement("p");
    const st = up.streams;
    live.textContent = st
      ? `Streams ${st.url}: ${st.connections} connection(s), ${st.live_streams}/${st.streams} streams live, ` +
        `${st.events_per_sec.toFixed(1)} events/s, ${st.reconnects} reconnects, ${st.bad_frames} bad frames; ` +
        `${up.edge_refreshes} REST edge refreshes`
      : `Live edge over REST: ${up.edge_refreshes} refreshes (no stream configured)`;
    box.appendChild(live);
    const sv = s.served_streams;
    if (st && sv) {
      // The streams served on to clients (/ws, /stream).
      const served = document.createElement("p");
      served.id = "served-streams";
      served.textContent = `Served: ${sv.connections} client connection(s) on ${sv.streams} stream(s), ` +
        `${sv.frames_sent} frames sent; closed slow ${sv.closed_slow}, rate ${sv.closed_rate}, no pong ${sv.closed_pong}; refused ${sv.refused}`;
      box.appendChild(served);
    }
    if (st && st.per_stream.length) {
      const ts = document.createElement("table");
      ts.innerHTML = "<thead><tr><th>stream</th><th>state</th><th>events</th><th>clients</th><th>last event</th></tr></thead><tbody></tbody>";
      ts.id = "stream-table";
      box.appendChild(ts);
      fillTable("stream-table", st.per_stream.slice(0, 50).map((x) => [
        x.stream, x.state, x.events, x.watchers,
        x.last_event_age_ms == null ? "—" : `${(x.last_event_age_ms / 1000).toFixed(1)} s ago`,
      ]));
    }
  }
}

init();
