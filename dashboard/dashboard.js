// The dashboard of SPEC §10. Every number comes from POST /query with the internal key
// the person typed once; the SQL is in queries.json. The Service panel (SPEC §12) reads
// GET /metrics, the service's own figures. Data from the service is only ever set as
// text, never as markup. Every request has a time limit: an answer that does not come is
// abandoned, said on the page, and asked again. Two views, chosen by the address's hash
// (`#view=explore`): the overview here, and Explore (SPEC §10.1) in explore.js.
"use strict";

const KEY_ITEM = "analytics-worker.internal-key";
const SVG = "http://www.w3.org/2000/svg";
const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const PALETTE = ["--s1", "--s2", "--s3", "--s4", "--s5", "--s6", "--s7", "--s8"];
// Seconds a request may take before it is abandoned: the live panels ask every second or
// two, the charts every minute over more data; signing in and the page's queries once;
// Explore's queries, asked by hand, as long as a chart's.
const LIMIT_SECONDS = { live: 5, chart: 20, once: 10, explore: 20 };

const $ = (id) => document.getElementById(id);
const state = {
  queries: null, layout: "profile", dataset: "hoox_telemetry", range: null,
  source: "auto", running: false, timers: {}, goodAt: {}, generation: 0, view: "overview",
};

class Unauthorized extends Error {}
class QueryFailed extends Error {}

// -- the key ------------------------------------------------------------------------

function storedKey() {
  try { return sessionStorage.getItem(KEY_ITEM) || ""; } catch (e) { return ""; }
}

function askForKey(message) {
  stop();
  try { sessionStorage.removeItem(KEY_ITEM); } catch (e) { /* storage disabled */ }
  $("signin").hidden = false;
  $("signin-message").textContent = message || "";
  const field = $("key");
  field.value = "";
  field.focus();
}

async function signIn(key) {
  $("signin-message").textContent = "Checking the key…";
  let status;
  try {
    status = await call("GET", "/status", null, key, LIMIT_SECONDS.once);
  } catch (e) {
    if (e instanceof Unauthorized) {
      askForKey("That key was not accepted. Enter the internal key again.");
    } else {
      $("signin").hidden = false;
      $("signin-message").textContent = e.message + " Try again.";
    }
    return;
  }
  try { sessionStorage.setItem(KEY_ITEM, key); } catch (e) { /* kept in memory only */ }
  state.key = key;
  state.layout = status.layout === "hoox" ? "hoox" : "profile";  // no field: profile
  state.dataset = status.dataset || state.dataset;
  // a setting of the service: read once, as the dataset is
  state.cloudflareConfigured = !(status.cloudflare && status.cloudflare.configured === false);
  $("signin").hidden = true;
  $("signin-message").textContent = "";
  delete notices.signin;
  drawNotices();
  describe(Number(status.events || 0));
  setUpViews();
  start();
  route();
}

// The header's line; the event count follows the Service panel's figures.
function describe(events) {
  $("about").textContent = `Dataset ${state.dataset}, ${state.layout} layout, ` +
    `${events.toLocaleString("en")} ${events === 1 ? "event" : "events"} in the log`;
}

// A request answered 401: the key of this session is no longer accepted.
function keyRefused() {
  askForKey("The service no longer accepts the key of this session (it may have been " +
    "changed or the session expired). Enter the internal key again; the data shown is " +
    "from before.");
  showNotice("signin", "Not signed in: the numbers below are the last ones shown.");
}

// -- HTTP ---------------------------------------------------------------------------

// fetch with a time limit that covers the whole answer, body included: past it the
// request is abandoned (AbortController) and said so.
async function within(seconds, path, options) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), seconds * 1000);
  try {
    const response = await fetch(path, Object.assign({}, options,
      { signal: controller.signal, cache: "no-store" }));
    return { response, text: await response.text() };
  } catch (e) {
    if (controller.signal.aborted) {
      throw new QueryFailed(`No answer within ${seconds} s: the request was abandoned.`);
    }
    throw new QueryFailed("The service did not answer (it may be stopped or restarting).");
  } finally {
    clearTimeout(timer);
  }
}

async function call(method, path, body, key, seconds) {
  const { response, text } = await within(seconds, path, {
    method,
    headers: Object.assign({ "X-Internal-Auth-Key": key || state.key || "" },
      body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  let doc = null;
  try { doc = JSON.parse(text); } catch (e) { doc = null; }
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok || !doc || doc.success === false) {
    const said = doc && typeof doc.error === "string" ? doc.error : response.statusText;
    const where = doc && doc.source === "cloudflare" ? "Cloudflare" : "The service";
    throw new QueryFailed(`${where} answered HTTP ${response.status}: ${said}.`);
  }
  return doc;
}

// A dataset as it appears after FROM (dashboard/__init__.py's table_name does the same).
function tableName(dataset) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(dataset) ? dataset : `"${dataset.replace(/"/g, "")}"`;
}

function fill(text, dataset) {
  return text.replaceAll("{table}", tableName(dataset))
    .replaceAll("{since}", state.range.since).replaceAll("{bucket}", state.range.bucket);
}

function sql(name) {
  return fill(state.queries.layouts[state.layout][name], state.dataset);
}

function query(name, seconds) {
  return call("POST", "/query", { query: sql(name), source: state.source }, null, seconds);
}

// -- refresh loops ------------------------------------------------------------------

const VIEWS = {
  health: { render: renderHealth, every: () => state.queries.health.refreshSeconds,
    limit: LIMIT_SECONDS.live },
  service: { render: renderService, every: () => 2, load: serviceFigures,
    limit: LIMIT_SECONDS.live },
  latency: { render: renderLatency, every: () => state.range.refreshSeconds,
    limit: LIMIT_SECONDS.chart },
  volume: { render: renderVolume, every: () => state.range.refreshSeconds,
    limit: LIMIT_SECONDS.chart },
  // The hoox layout only: agent-worker's risk events.
  risk: { render: renderRisk, every: () => state.range.refreshSeconds,
    limit: LIMIT_SECONDS.chart },
  riskLatest: { render: renderRiskLatest, every: () => state.range.refreshSeconds,
    limit: LIMIT_SECONDS.chart },
};

// The views whose query the layout has, and those that load their own figures.
function views() {
  return Object.keys(VIEWS).filter(
    (name) => VIEWS[name].load || name in state.queries.layouts[state.layout]);
}

function start() {
  state.running = true;
  for (const name of views()) refresh(name, state.generation);
}

function stop() {
  state.running = false;
  state.generation += 1;
  for (const t of Object.values(state.timers)) clearTimeout(t);
  state.timers = {};
}

function restartViews() {
  state.generation += 1;
  for (const name of views().filter((n) => n !== "health" && n !== "service")) {
    clearTimeout(state.timers[name]);
    refresh(name, state.generation);
  }
  for (const name of ["health", "service"]) {
    clearTimeout(state.timers[name]);
    refresh(name, state.generation);
  }
}

// While Explore is shown, the overview's views wait; the Service panel's figures still
// keep the header's event count live.
function wanted(name) {
  return name === "service" || state.view === "overview";
}

async function refresh(name, generation) {
  if (!state.running || generation !== state.generation || !wanted(name)) return;
  const began = performance.now();
  const view = VIEWS[name];
  try {
    const doc = view.load ? await view.load(view.limit) : await query(name, view.limit);
    // An answer asked before the source changed says nothing of the source now chosen.
    if (generation !== state.generation) return;
    if (!view.load) {
      $("answered").hidden = false;
      $("source-name").textContent = doc.source;
    }
    view.render(doc.results);
    state.goodAt[name] = new Date();
    setState(name, `updated ${clock(state.goodAt[name])} from ${doc.source}`, false);
    clearNotice(name);
  } catch (e) {
    if (generation !== state.generation) return;
    if (e instanceof Unauthorized) {
      keyRefused();
      return;
    }
    const kept = state.goodAt[name] ? `showing the data of ${clock(state.goodAt[name])}`
      : "nothing to show yet";
    setState(name, `not updated: ${kept}`, true);
    showNotice(name, `${TITLES[name]}: ${e instanceof QueryFailed ? e.message : "the answer could not be read."} ` +
      `Asking again; ${kept}.`);
  }
  // The next run starts one period after this one began: a steady rate, never two at once
  // (a request past its time limit was abandoned, so an answer that hangs is asked again).
  const wait = Math.max(0, view.every() * 1000 - (performance.now() - began));
  state.timers[name] = setTimeout(() => refresh(name, generation), wait);
}

const TITLES = { health: "System health", service: "Service", latency: "Latency",
  volume: "Volume heatmap", risk: "Risk events", riskLatest: "Latest risk actions",
  signin: "Key" };
const notices = {};

function showNotice(name, text) {
  notices[name] = text;
  drawNotices();
}

function clearNotice(name) {
  if (name in notices) { delete notices[name]; drawNotices(); }
}

function drawNotices() {
  const text = Object.values(notices).join(" ");
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function setState(name, text, stale) {
  const el = $(`${name}-state`);
  el.textContent = text;
  el.classList.toggle("stale", stale);
}

function clock(date) {
  return date.toISOString().slice(11, 19) + " UTC";
}

// -- view 1: system health ------------------------------------------------------------

function renderHealth(rows) {
  const hoox = state.layout === "hoox";
  const rule = state.queries.health;
  let calls = 0, errors = 0;
  const body = $("health-rows");
  body.replaceChildren();
  for (const row of rows) {
    const outcome = !hoox || row.kind === "api-call" || row.kind === "trade";
    if (outcome) { calls += Number(row.calls_60s); errors += Number(row.errors_60s); }
    const tr = document.createElement("tr");
    const rate = Number(row.calls) ? Number(row.errors) / Number(row.calls) : 0;
    // The banner's rule, applied to the worker's 15 minutes: one stray error is no alarm.
    if (outcome && rate >= rule.minErrorRate && Number(row.errors) >= rule.minErrors) {
      tr.className = "bad";
    }
    const cells = (hoox ? [row.kind] : []).concat([row.worker,
      fmtInt(row.calls), outcome ? fmtInt(row.errors) : "–", outcome ? pct(rate) : "–"]);
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i >= cells.length - 3) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = hoox ? 5 : 4;
    td.className = "muted";
    td.textContent = "No events in the last 15 minutes.";
    tr.append(td);
    body.append(tr);
  }
  const banner = $("banner");
  const spike = errors >= rule.minErrors && calls > 0 && errors / calls >= rule.minErrorRate;
  if (spike) {
    banner.textContent = `Error spike: ${fmtInt(errors)} of ${fmtInt(calls)} calls failed in ` +
      `the last ${rule.windowSeconds} s (${pct(errors / calls)}); the warning level is ` +
      `${rule.minErrors} errors and ${pct(rule.minErrorRate)}.`;
  }
  banner.hidden = !spike;
}

function fmtInt(v) { return Number(v).toLocaleString("en"); }
function pct(v) { return (100 * v).toFixed(v > 0 && v < 0.1 ? 1 : 0) + " %"; }

// -- view 2: latency --------------------------------------------------------------------

function renderLatency(rows) {
  const svg = $("latency");
  const W = 900, H = 320, L = 64, R = 16, T = 14, B = 34;
  svg.replaceChildren();
  const series = new Map();
  for (const row of rows) {
    const name = state.layout === "hoox" && row.kind === "trade"
      ? "trades" : row.worker;
    if (!series.has(name)) series.set(name, []);
    series.get(name).push({ t: parseTime(row.t), p50: Number(row.p50), p95: Number(row.p95) });
  }
  const legend = $("latency-legend");
  legend.replaceChildren();
  const now = Date.now();
  const t0 = now - rangeMs(), t1 = now;
  if (!series.size) {
    emptyText(svg, W, H, `No ${state.layout === "hoox" ? "api-call or trade " : ""}events in the last ${state.range.label}.`);
    return;
  }
  let top = 0;
  for (const points of series.values()) for (const p of points) top = Math.max(top, p.p95, p.p50);
  top = niceCeil(top || 1);
  const x = (t) => L + (W - L - R) * Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    line(svg, L, y(v), W - R, y(v), i ? "grid" : "axis");
    text(svg, L - 8, y(v) + 4, fmtMs(v), "end");
  }
  text(svg, L + 6, T + 14, "ms", "start");
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6;
    text(svg, x(t), H - 12, timeLabel(t), i === 0 ? "start" : i === 6 ? "end" : "middle");
  }
  [...series.keys()].sort().forEach((name, i) => {
    const color = `var(${PALETTE[i % PALETTE.length]})`;
    const points = series.get(name).sort((a, b) => a.t - b.t);
    for (const [key, dash] of [["p50", ""], ["p95", "6 4"]]) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", points.map((p, j) => `${j ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(""));
      path.style.fill = "none";
      path.style.stroke = color;
      path.setAttribute("stroke-width", key === "p50" ? "2.2" : "1.6");
      if (dash) path.setAttribute("stroke-dasharray", dash);
      path.setAttribute("class", "series");
      path.dataset.series = `${name} ${key}`;
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${name} ${key}`;
      path.append(title);
      svg.append(path);
      if (points.length === 1) {
        const dot = document.createElementNS(SVG, "circle");
        dot.setAttribute("cx", x(points[0].t)); dot.setAttribute("cy", y(points[0][key]));
        dot.setAttribute("r", 3); dot.style.fill = color;
        svg.append(dot);
      }
    }
    for (const [key, dashed] of [["p50", false], ["p95", true]]) {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch" + (dashed ? " dashed" : "");
      swatch.style.borderTopColor = color;
      li.append(swatch, `${name} ${key}`);
      legend.append(li);
    }
  });
}

// -- view 3: volume heatmap ---------------------------------------------------------------

function renderVolume(rows) {
  const svg = $("volume");
  svg.replaceChildren();
  const panels = state.layout === "hoox"
    ? [["Trades", (k) => k === "trade"], ["Signals", (k) => k === "signal"],
       ["Other events", (k) => k !== "trade" && k !== "signal"]]
    : [["Events", () => true]];
  const L = 110, T = 22, cell = 30, rowH = 20, gap = 34;
  const panelH = T + 7 * rowH + gap;
  const W = L + 24 * cell + 10, H = panels.length * panelH;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const legend = $("volume-legend");
  legend.replaceChildren();
  let total = 0;
  panels.forEach(([label, pick], p) => {
    const counts = Array.from({ length: 7 }, () => new Array(24).fill(0));
    for (const row of rows) {
      if (!pick(row.kind)) continue;
      counts[Number(row.weekday) - 1][Number(row.hour)] += Number(row.events);
    }
    const max = Math.max(0, ...counts.flat());
    const sum = counts.flat().reduce((a, b) => a + b, 0);
    total += sum;
    const top = p * panelH;
    const head = text(svg, 0, top + 14, `${label}: ${fmtInt(sum)} in the last ${state.range.label}`, "start");
    head.setAttribute("class", "cell-label");
    for (let h = 0; h < 24; h += 3) text(svg, L + h * cell + cell / 2, top + T + 7 * rowH + 14, `${String(h).padStart(2, "0")}h`, "middle");
    counts.forEach((hours, d) => {
      text(svg, L - 8, top + T + d * rowH + rowH / 2 + 4, WEEKDAYS[d], "end");
      hours.forEach((n, h) => {
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", L + h * cell + 1);
        rect.setAttribute("y", top + T + d * rowH + 1);
        rect.setAttribute("width", cell - 2);
        rect.setAttribute("height", rowH - 2);
        rect.setAttribute("rx", 2);
        rect.style.fill = shade(n, max);
        rect.setAttribute("class", n ? "cell filled" : "cell");
        rect.dataset.events = String(n);
        const title = document.createElementNS(SVG, "title");
        title.textContent = `${label}, ${WEEKDAYS[d]} ${String(h).padStart(2, "0")}:00–:59 UTC: ${fmtInt(n)}`;
        rect.append(title);
        svg.append(rect);
      });
    });
    legend.append(heatLegend(label, max));
  });
  $("volume-about").textContent = `per weekday and hour (UTC), last ${state.range.label}` +
    (total ? "" : ": no events");
}

// A cell's colour: the square root of its share of the panel's busiest hour, so that
// quiet hours still show.
function shade(n, max) {
  return n && max ? `rgba(var(--heat), ${(0.12 + 0.88 * Math.sqrt(n / max)).toFixed(3)})`
    : "transparent";
}

// What each shade counts, for one panel: swatches for no events, one event, and the counts
// at a quarter, half, three quarters and all of the scale (the busiest hour).
function heatLegend(label, max) {
  const p = document.createElement("p");
  p.append(`${label}, shade by events in one hour of one weekday (UTC):`);
  const counts = [0];
  if (max) {
    counts.push(1);
    for (const f of [0.25, 0.5, 0.75, 1]) {
      const n = Math.round(max * f * f);
      if (n > counts[counts.length - 1]) counts.push(n);
    }
  }
  const list = document.createElement("ul");
  list.className = "legend";
  for (const n of counts) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "cell-swatch";
    swatch.style.backgroundColor = shade(n, max);
    li.append(swatch, n === max && n ? `${fmtInt(n)} (the busiest)` : fmtInt(n));
    li.dataset.events = String(n);
    list.append(li);
  }
  p.append(list);
  return p;
}

// -- view 4 (hoox layout): agent-worker's risk events --------------------------------------

const RISK_KINDS = ["housekeeping", "trailing-stop", "take-profit", "kill-switch"];

function renderRisk(rows) {
  const byKind = Object.fromEntries(rows.map((r) => [r.kind, r]));
  const body = $("risk-rows");
  body.replaceChildren();
  for (const kind of RISK_KINDS) {  // every kind, counted 0 when it did not happen
    const row = byKind[kind];
    const tr = document.createElement("tr");
    if (kind === "kill-switch" && row && Number(row.events)) tr.className = "bad";
    const cells = [kind, fmtInt(row ? row.events : 0),
      kind === "housekeeping" ? fmtInt(row ? row.degraded : 0) : "–",
      row ? whenText(row.last) : "never"];
    cells.forEach((value, i) => {
      const td = document.createElement("td");
      td.textContent = value;
      if (i === 1 || i === 2) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
  }
  $("risk-about").textContent = `agent-worker, last ${state.range.label}`;
}

function renderRiskLatest(rows) {
  const body = $("riskLatest-rows");
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (row.kind === "kill-switch") tr.className = "bad";
    for (const value of [whenText(row.at), row.kind, riskWhat(row),
      [row.exchange, row.symbol].filter(Boolean).join(" ") || "–"]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    body.append(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.className = "muted";
    td.textContent = `No trailing stop, take profit or kill switch in the last ${state.range.label}.`;
    tr.append(td);
    body.append(tr);
  }
}

// The slots of SPEC §9 in words: value1..3 are double1..3, value5 is double5.
function riskWhat(row) {
  const n = (v) => Number(v).toLocaleString("en", { maximumFractionDigits: 4 });
  if (row.kind === "trailing-stop") {
    return `${row.detail}: closed at ${n(row.value2)}, watermark ${n(row.value1)}`;
  }
  if (row.kind === "take-profit") {
    return `${row.detail}: scaled out ${n(row.value3)} at ${n(row.value2)} (entry ${n(row.value1)})`;
  }
  return `${row.detail}: PnL ${n(row.value1)}% against a limit of ${n(row.value2)}% ` +
    `(unrealized ${n(row.value3)} of ${n(row.value5)})`;
}

function whenText(seconds) {
  return new Date(Number(seconds) * 1000).toISOString().slice(0, 19).replace("T", " ");
}

// -- drawing helpers ----------------------------------------------------------------------

function line(svg, x1, y1, x2, y2, cls) {
  const el = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) el.setAttribute(k, v);
  el.setAttribute("class", cls);
  svg.append(el);
}

function text(svg, x, y, content, anchor) {
  const el = document.createElementNS(SVG, "text");
  el.setAttribute("x", x); el.setAttribute("y", y);
  el.setAttribute("text-anchor", anchor);
  el.textContent = content;
  svg.append(el);
  return el;
}

function emptyText(svg, W, H, message) {
  const el = text(svg, W / 2, H / 2, message, "middle");
  el.setAttribute("class", "empty");
}

function parseTime(value) {
  // Analytics Engine renders DateTime as "YYYY-MM-DD hh:mm:ss", in UTC.
  return Date.parse(String(value).replace(" ", "T") + "Z");
}

function rangeMs() {
  const [n, unit] = state.range.since.replace(/'/g, "").split(" ");
  return Number(n) * { MINUTE: 60e3, HOUR: 3600e3, DAY: 86400e3 }[unit];
}

function timeLabel(ms) {
  const iso = new Date(ms).toISOString();
  return rangeMs() > 86400e3 ? `${iso.slice(5, 10)} ${iso.slice(11, 13)}h` : iso.slice(11, 16);
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtMs(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }

// -- the Service panel: the service's figures from /metrics ------------------------------

async function serviceFigures(seconds) {
  const { response, text } = await within(seconds, "/metrics",
    { headers: { "X-Internal-Auth-Key": state.key || "" } });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new QueryFailed(`The service answered HTTP ${response.status}.`);
  return { results: parseMetrics(text), source: "the service" };
}

// Prometheus's text format, as much as the panel reads: `name{k="v",…} value` lines.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// What the Service panel says: red only for what went wrong. A Cloudflare that is not
// configured, or not asked yet, and a replay that prints to stdout or sends nowhere are
// the service's settings, said in neutral grey with where things go.
function renderService(samples) {
  const one = (name) => samples.find((s) => s.name === "analytics_worker_" + name);
  const backlog = one("replay_backlog_events");
  const set = (id, text, look) => {  // look: "bad", "neutral" or nothing
    $(id).textContent = text;
    $(id).classList.toggle("bad", look === "bad");
    $(id).classList.toggle("neutral", look === "neutral");
  };
  const sink = backlog ? backlog.labels.sink : "none";
  if (sink === "relay") {
    const lag = one("replay_lag_seconds");
    const last = one("replay_last_success_timestamp_seconds");
    const dead = one("replay_dead_letter_events");
    set("service-backlog", `${fmtInt(backlog.value)} events (relay)`,
      backlog.value > 0 && "bad");
    set("service-lag", lag && lag.value > 0 ? `${duration(lag.value)} old` : "none waiting",
      lag && lag.value > 300 && "bad");
    set("service-last-send", last ? `${clock(new Date(last.value * 1000))}` : "never");
    set("service-dead", dead ? fmtInt(dead.value) : "0", dead && dead.value > 0 && "bad");
    $("service-replay-hint").textContent = "";
  } else {
    set("service-backlog", sink === "stdout" ? "printed to stdout" : "off (sink none)",
      "neutral");
    for (const id of ["service-lag", "service-last-send", "service-dead"]) set(id, "–");
    $("service-replay-hint").textContent = sink === "stdout"
      ? "Replay prints each data point to the service's standard output " +
        "(ANALYTICS_SINK=stdout); nothing is sent to Cloudflare."
      : "Replay is off (ANALYTICS_SINK=none): events stay in the local log only.";
  }
  const reachable = one("cloudflare_reachable");
  if (!state.cloudflareConfigured) {
    set("service-cloudflare", "not configured", "neutral");
    $("service-cloudflare-hint").textContent = "Set CLOUDFLARE_API_TOKEN and " +
      "CLOUDFLARE_ACCOUNT_ID to query Cloudflare; until then the local log answers.";
  } else {
    $("service-cloudflare-hint").textContent = "";
    if (!reachable) set("service-cloudflare", "not asked yet", "neutral");
    else if (reachable.value === 1) set("service-cloudflare", "reachable");
    else set("service-cloudflare", "not reachable", "bad");
  }
  const bytes = one("log_bytes");
  const events = one("log_events");
  set("service-log-bytes", bytes ? size(bytes.value) : "–");
  set("service-log-events", events ? fmtInt(events.value) : "–");
  if (events) describe(events.value);
}

function duration(s) {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
  return `${bytes.toFixed(i && bytes < 10 ? 1 : 0)} ${units[i]}`;
}

// -- the two views: the address's hash says which ------------------------------------------

// `#range=24h&view=explore&dataset=…&q=…`: the time range, the view, and Explore's dataset
// and query, so that a view can be bookmarked and shared.
function hashParams() {
  return new URLSearchParams(location.hash.slice(1));
}

// Changes some of the hash's parameters (null removes one); `push` makes a history entry.
function setHash(changes, push) {
  const params = hashParams();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") params.delete(name);
    else params.set(name, value);
  }
  const url = `${location.pathname}${location.search}#${params}`;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

function hrefWith(changes) {
  const params = hashParams();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) params.delete(name); else params.set(name, value);
  }
  return `#${params}`;
}

// Shows what the hash says: at sign-in, on back and forward, and after a change.
function route() {
  if (!state.key || !state.queries) return;
  const params = hashParams();
  const range = state.queries.ranges.find((r) => r.name === params.get("range"));
  if (range && range !== state.range) {
    state.range = range;
    for (const input of document.querySelectorAll('input[name="range"]')) {
      input.checked = input.value === range.name;
    }
    rangeChanged();
  }
  const view = params.get("view") === "explore" ? "explore" : "overview";
  if (view !== state.view) {
    state.view = view;
    if (state.running) restartViews();
  }
  $("overview").hidden = view !== "overview";
  $("explore").hidden = view !== "explore";
  for (const [id, name] of [["nav-overview", "overview"], ["nav-explore", "explore"]]) {
    if (name === view) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  $("nav-overview").href = hrefWith({ view: null });
  $("nav-explore").href = hrefWith({ view: "explore" });
  // One set of controls: the range and the source apply to both views.
  const controls = $("controls");
  if (view === "explore") $("explore-controls").append(controls);
  else $("latency-title").closest("section").before(controls);
  if (view === "explore") showExplore(params.get("dataset"), params.get("q"));
  else leaveExplore();
}

function rangeChanged() {
  if (state.running) restartViews();
  exploreRangeChanged();
}

// -- setting up -----------------------------------------------------------------------------

function setUpViews() {
  const hoox = state.layout === "hoox";
  const head = $("health-head");
  head.replaceChildren();
  for (const [label, num] of (hoox ? [["Event", false]] : []).concat([["Worker", false],
    ["Calls", true], ["Errors", true], ["Error rate", true]])) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    if (num) th.className = "num";
    head.append(th);
  }
  $("latency-about").textContent = hoox
    ? "p50 (solid) and p95 (dashed) per worker, api-call latencyMs; trades: the order's latencyMs (double3), one line for all trades"
    : "p50 (solid) and p95 (dashed) per worker, latencyMs";
  $("risk-panel").hidden = !("risk" in state.queries.layouts[state.layout]);
  $("board").hidden = false;
  $("views").hidden = false;
}

async function main() {
  try {
    const { text } = await within(LIMIT_SECONDS.once, "/static/queries.json", {});
    state.queries = JSON.parse(text);
  } catch (e) {
    document.body.append(Object.assign(document.createElement("p"), {
      className: "notice",
      textContent: "The dashboard's queries could not be loaded from the service; reload the page.",
    }));
    return;
  }
  const saved = new URLSearchParams(location.hash.slice(1)).get("range");
  state.range = state.queries.ranges.find((r) => r.name === saved) ||
    state.queries.ranges.find((r) => r.name === state.queries.defaultRange);
  const box = $("ranges");
  for (const r of state.queries.ranges) {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), {
      type: "radio", name: "range", value: r.name, checked: r === state.range,
    });
    input.addEventListener("change", () => {
      state.range = r;
      setHash({ range: r.name }, false);
      rangeChanged();
    });
    label.append(input, r.label);
    box.append(label);
  }
  $("source").addEventListener("change", (e) => {
    state.source = e.target.value;
    if (state.running) restartViews();
    exploreSourceChanged();
  });
  for (const [id, view] of [["nav-overview", "overview"], ["nav-explore", "explore"]]) {
    $(id).addEventListener("click", (e) => {
      e.preventDefault();  // keep the range and Explore's place in the address
      setHash({ view: view === "explore" ? "explore" : null }, true);
      route();
    });
  }
  window.addEventListener("popstate", route);
  window.addEventListener("hashchange", route);
  setUpExplore();
  $("signin").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("key").value.trim();
    if (key) signIn(key);
  });
  const key = storedKey();
  if (key) signIn(key); else askForKey("");
}

// After explore.js has run too (both are deferred, and run in order).
document.addEventListener("DOMContentLoaded", main);
