// Explore (SPEC §10.1): every dataset the log holds, a dataset's newest points and its
// points over the chosen range, and a SQL box whose answer is shown as a table or a line
// chart and downloaded as CSV or JSON. It uses dashboard.js's state, requests and drawing
// helpers and follows its rules: a value from the data is only ever set as text, and every
// request has a time limit. Its SQL is in queries.json ("explore").
"use strict";

const RECENT_ITEM = "analytics-worker.recent-queries";
// Column types, as `meta` names them (ClickHouse's names, from either source).
const NUMERIC_TYPE = /^(Nullable\()?(U?Int\d+|Float\d+|Decimal)/;
const TIME_TYPE = /^(Nullable\()?(DateTime|Date)/;
const MAX_SERIES = 12;      // lines in one chart; more are said, not drawn
const MAX_MARKERS = 2000;   // points drawn as dots (each with its value as a tooltip)

const explore = {
  shown: false,      // the view is on screen (its list is asked again on each visit)
  dataset: null,     // the dataset open
  ran: null,         // the query last run, from the box or the address
  answer: null,      // the answer shown: { doc, text, meta, rows }
  show: "table",     // the answer as a table or a chart
  tries: { list: 0, dataset: 0, query: 0 },  // the newest request of each part wins
};

function exploreSql(name, dataset) {
  return fill(state.queries.explore[name], dataset);
}

// -- requests ---------------------------------------------------------------------------

// POST /query with the page's source. Resolves with the answer whatever its status (a
// refusal is shown in the engine's own words); rejects when no answer came in time.
async function ask(query) {
  const began = performance.now();
  const { response, text } = await within(LIMIT_SECONDS.explore, "/query", {
    method: "POST",
    headers: { "X-Internal-Auth-Key": state.key || "", "Content-Type": "application/json" },
    body: JSON.stringify({ query, source: state.source }),
  });
  if (response.status === 401) throw new Unauthorized();
  let doc = null;
  try { doc = JSON.parse(text); } catch (e) { doc = null; }
  const answered = response.ok && doc && doc.success === true && Array.isArray(doc.results);
  return { response, text, doc, answered, ms: performance.now() - began };
}

// Why an answer is not rows: the service's `error` as it wrote it.
function refusal(answer) {
  const { doc, response } = answer;
  if (doc && typeof doc.error === "string") return doc.error;
  if (response.ok) {
    return "The answer is not JSON: the query's FORMAT clause asks for another format. " +
      "Explore reads JSON answers; run it without the FORMAT clause.";
  }
  return `HTTP ${response.status} ${response.statusText}`;
}

function failed(e, say) {
  if (e instanceof Unauthorized) keyRefused();
  else say(e instanceof QueryFailed ? e.message : "The answer could not be read.");
}

// -- the view ---------------------------------------------------------------------------

function showExplore(dataset, query) {
  if (!explore.shown) {
    explore.shown = true;
    loadDatasets();
  }
  if ((dataset || null) !== explore.dataset) openDataset(dataset || null);
  if (query && query !== explore.ran) {
    $("sql").value = query;
    runQuery(query);
  }
}

function leaveExplore() {
  explore.shown = false;
}

function exploreRangeChanged() {
  if (explore.shown && explore.dataset) loadDatasetChart(explore.dataset, explore.tries.dataset);
}

function exploreSourceChanged() {
  if (!explore.shown) return;
  loadDatasets();
  if (explore.dataset) openDataset(explore.dataset);
}

// -- datasets ---------------------------------------------------------------------------

// SHOW TABLES names them; the log's counters count their points (/status); each one's
// newest point is a max(timestamp), one step down the time index.
async function loadDatasets() {
  const tries = ++explore.tries.list;
  setState("datasets", "asking…", false);
  let tables, status;
  try {
    [tables, status] = await Promise.all([ask(state.queries.explore.tables),
      call("GET", "/status", null, null, LIMIT_SECONDS.explore)]);
  } catch (e) {
    if (tries === explore.tries.list) failed(e, (m) => setState("datasets", m, true));
    return;
  }
  if (tries !== explore.tries.list) return;
  if (!tables.answered) {
    setState("datasets", refusal(tables), true);
    return;
  }
  const held = new Map((status.datasets || []).map((d) => [d.dataset, d]));
  const body = $("datasets-rows");
  body.replaceChildren();
  const newest = [];
  for (const row of tables.doc.results) {
    const name = String(Object.values(row)[0]);
    const kept = held.get(name);
    const tr = document.createElement("tr");
    tr.dataset.dataset = name;
    const link = document.createElement("a");
    link.href = hrefWith({ view: "explore", dataset: name });
    link.textContent = name;
    link.addEventListener("click", (e) => {
      e.preventDefault();
      setHash({ view: "explore", dataset: name }, true);
      route();
    });
    const sink = status.replay && status.replay.sink;
    const cells = [link, kept ? fmtInt(kept.rows) : "–", "…",
      !kept ? "not in the local log" : !kept.replayed ? "in the log only"
        : `in the log, and replay sends it on (sink ${sink})`];
    cells.forEach((value, i) => {
      const td = document.createElement(i ? "td" : "th");
      if (!i) td.scope = "row";
      td.append(value);
      if (i === 1) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
    newest.push(fillNewest(name, tr.children[2], tries));
  }
  markOpenDataset();
  await Promise.all(newest);
  if (tries === explore.tries.list) {
    setState("datasets", `updated ${clock(new Date())} from ${tables.doc.source}`, false);
  }
}

// The answer to one of a dataset's queries, or null once said why there is none (an error,
// a refusal) or when another dataset was chosen meanwhile.
async function datasetAnswer(sqlName, name, tries) {
  let answer;
  try {
    answer = await ask(exploreSql(sqlName, name));
  } catch (e) {
    if (tries === explore.tries.dataset) failed(e, (m) => setState("dataset", m, true));
    return null;
  }
  if (tries !== explore.tries.dataset) return null;
  if (!answer.answered) {
    setState("dataset", refusal(answer), true);
    return null;
  }
  return answer;
}

async function fillNewest(name, cell, tries) {
  let text;
  try {
    const answer = await ask(exploreSql("newest", name));
    const value = answer.answered && answer.doc.results[0]
      ? Object.values(answer.doc.results[0])[0] : null;
    // max() of no points is the epoch
    text = !answer.answered ? "not known" : value && !String(value).startsWith("1970-")
      ? String(value) : "no points";
  } catch (e) {
    if (e instanceof Unauthorized) { keyRefused(); return; }
    text = "not known";
  }
  if (tries === explore.tries.list) cell.textContent = text;
}

function markOpenDataset() {
  for (const tr of $("datasets-rows").children) {
    if (tr.dataset.dataset === explore.dataset) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
  }
}

// -- one dataset: its points over the range, and its newest points ----------------------

function openDataset(name) {
  explore.dataset = name;
  markOpenDataset();
  const tries = ++explore.tries.dataset;
  $("dataset-panel").hidden = !name;
  if (!name) return;
  $("dataset-title").textContent = name;
  $("dataset-points-caption").textContent = `Newest points of ${name}`;
  $("dataset-state").textContent = "";
  loadDatasetChart(name, tries);
  loadDatasetPoints(name, tries);
}

function bucketSeconds() {
  const [n, unit] = state.range.bucket.replace(/'/g, "").split(" ");
  return Number(n) * { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86400 }[unit];
}

function bucketWords() {
  const [n, unit] = state.range.bucket.replace(/'/g, "").split(" ");
  return `${n === "1" ? "" : `${n} `}${unit.toLowerCase()}${n === "1" ? "" : "s"}`;
}

async function loadDatasetChart(name, tries) {
  const about = `points per ${bucketWords()}, last ${state.range.label}`;
  $("dataset-about").textContent = about;
  const svg = $("dataset-chart");
  svg.setAttribute("aria-label", `Points of ${name} per ${bucketWords()}, last ${state.range.label}`);
  const answer = await datasetAnswer("perBucket", name, tries);
  if (!answer) return;
  // Every bucket of the range, 0 where the answer has none (it lists only the others).
  const step = bucketSeconds() * 1000;
  const counted = new Map(answer.doc.results.map((r) => [timeOf(r.t), Number(r.points)]));
  const t1 = Date.now(), t0 = t1 - rangeMs();
  const points = [];
  for (let t = Math.floor(t0 / step) * step; t <= t1; t += step) {
    const n = counted.get(t) || 0;
    points.push({ t, v: n, label: [new Date(t).toISOString().slice(0, 19).replace("T", " "), n] });
  }
  // a dot, with its count, on each bucket that holds points
  drawLines(svg, new Map([["points", points]]), { t0, t1, H: 220, markers: (p) => p.v > 0,
    empty: `No points in the last ${state.range.label}.`,
    nothing: !answer.doc.results.length });
  setState("dataset", `updated ${clock(new Date())} from ${answer.doc.source}`, false);
}

async function loadDatasetPoints(name, tries) {
  const columns = $("dataset-columns");
  const answer = await datasetAnswer("points", name, tries);
  if (!answer) return;
  const rows = answer.doc.results;
  const meta = answer.doc.meta || [];
  // Most of the 20 blobs and 20 doubles are unset ('' and 0): only the columns that hold
  // a value in some point shown, and not `dataset`, the same in every row.
  const empty = (v) => v === "" || v === 0 || v === null || v === undefined;
  const kept = meta.filter((m) => m.name !== "dataset" &&
    (m.name === "timestamp" || rows.some((r) => !empty(r[m.name]))));
  const left = meta.filter((m) => m.name !== "dataset" && !kept.includes(m));
  drawTable($("dataset-points"), kept, rows);
  columns.textContent = !rows.length ? "No points." : `The newest ${fmtInt(rows.length)} ` +
    `${rows.length === 1 ? "point" : "points"}` + (left.length
      ? `; left out, empty in every one of them: ${spans(left.map((m) => m.name))}.` : ".");
}

// blob3, blob4, …, blob20 as "blob3–blob20"
function spans(names) {
  const out = [];
  for (const name of names) {
    const m = /^(.*?)(\d+)$/.exec(name);
    const last = out[out.length - 1];
    if (m && last && last.prefix === m[1] && last.to + 1 === Number(m[2])) {
      last.to += 1;
    } else {
      out.push(m ? { prefix: m[1], from: Number(m[2]), to: Number(m[2]) }
        : { name });
    }
  }
  return out.map((s) => s.name !== undefined ? s.name : s.from === s.to
    ? `${s.prefix}${s.from}` : `${s.prefix}${s.from}–${s.prefix}${s.to}`).join(", ");
}

// -- the SQL box ------------------------------------------------------------------------

function runBox() {
  const query = $("sql").value.trim();
  if (!query) {
    $("result-status").textContent = "Type a query first, for example SHOW TABLES.";
    return;
  }
  setHash({ view: "explore", q: query }, query !== hashParams().get("q"));
  runQuery(query);
}

// The page's own marks time each run (bench/explore.py reads them): asked, answered, and
// drawn (the table on screen).
async function runQuery(query) {
  for (const name of ["explore-asked", "explore-answered", "explore-drawn"]) {
    performance.clearMarks(name);
  }
  performance.mark("explore-asked");
  const tries = ++explore.tries.query;
  explore.ran = query;
  remember(query);
  samplingNote(query);
  $("result-status").textContent = "Asking…";
  let answer;
  try {
    answer = await ask(query);
  } catch (e) {
    if (tries === explore.tries.query) failed(e, (m) => showRefusal(m, ""));
    return;
  }
  if (tries !== explore.tries.query) return;
  performance.mark("explore-answered");
  if (!answer.answered) {
    const from = answer.doc && answer.doc.source ? ` from ${answer.doc.source}` : "";
    showRefusal(refusal(answer), `Refused${from} (HTTP ${answer.response.status}) ` +
      `in ${fmtMs(answer.ms)} ms:`);
    return;
  }
  showAnswer(answer);
}

function showRefusal(message, status) {
  explore.answer = null;
  $("result-status").textContent = status;
  $("result-error").textContent = message;
  $("result-error").hidden = false;
  for (const id of ["result-tools", "result-table-box", "result-chart-box"]) $(id).hidden = true;
  $("result-more").textContent = "";
}

function showAnswer({ doc, text, ms }) {
  const rows = doc.results;
  const meta = Array.isArray(doc.meta) && doc.meta.length ? doc.meta
    : Object.keys(rows[0] || {}).map((name) => ({ name, type: "" }));
  explore.answer = { doc, text, meta, rows };
  const shown = state.queries.explore.shownRows;
  $("result-error").hidden = true;
  $("result-status").textContent = `Answered by ${doc.source}: ${fmtInt(rows.length)} ` +
    `${rows.length === 1 ? "row" : "rows"} in ${fmtMs(ms)} ms`;
  $("result-more").textContent = (rows.length > shown
    ? `Showing the first ${fmtInt(shown)} of ${fmtInt(rows.length)} rows; the downloads ` +
      "hold them all." : "") + (doc.truncated
    ? ` The service stopped at its row cap: the query has more than these ` +
      `${fmtInt(rows.length)} rows (add a LIMIT or narrow it).` : "");
  const chart = chartable(meta);
  const how = chart ? explore.show : "table";
  $("show-chart").disabled = !chart;
  $("chart-hint").textContent = chart ? ""
    : "A chart needs a DateTime column and a numeric column.";
  $("result-tools").hidden = false;
  $("result-table-box").hidden = how !== "table";  // in view, so its rows in view are drawn
  drawTable($("result-table"), meta, rows.slice(0, shown));
  showAs(how);
  // Drawn: after the next frame has been painted.
  requestAnimationFrame(() => setTimeout(() => performance.mark("explore-drawn"), 0));
}

function showAs(how) {
  const chart = how === "chart" && explore.answer && chartable(explore.answer.meta);
  for (const input of document.querySelectorAll('input[name="show"]')) {
    input.checked = input.value === (chart ? "chart" : "table");
  }
  const box = $("result-table-box");
  const hidden = box.hidden;
  box.hidden = Boolean(chart);
  $("result-chart-box").hidden = !chart;
  if (chart) drawAnswerChart(chart, explore.answer.rows);
  // back from the chart: the rows in view, now that the box has a height
  else if (hidden) drawWindow(tableViews.get($("result-table")), true);
}

// A table draws only the cells in its scroll box's view, and a few rows and columns more
// on each side, so that 1,000 rows of 44 columns cost what a screenful does (every row in
// the page took seconds to lay out); the rest is blank space of its size, drawn as the box
// scrolls. Fixed column widths keep the columns still meanwhile.
const WINDOW = { rows: 4, cols: 2, rowPx: 0, chPx: 0, widestCh: 40 };
const tableViews = new WeakMap();

function drawTable(table, meta, rows) {
  // The old rows go first: laying out old rows under new columns costs as much as a table.
  table.tBodies[0].replaceChildren();
  const numeric = meta.map((m) => NUMERIC_TYPE.test(m.type || ""));
  // Each column as wide as its longest value in the first 200 rows (a longer one further
  // down is cut short, its whole text in its tooltip), at most 40 characters.
  const sample = rows.length > 200 ? rows.slice(0, 200) : rows;
  const chars = meta.map((m) => {
    let w = Math.max(m.name.length, (m.type || "").length);
    for (const row of sample) {
      w = Math.max(w, cellText(row[m.name]).length);
      if (w >= WINDOW.widestCh) break;
    }
    return Math.min(WINDOW.widestCh, Math.max(3, w));
  });
  if (!WINDOW.chPx) WINDOW.chPx = digitWidth(table);
  const left = [0];  // each column's left edge, and the table's width last
  const cols = document.createElement("colgroup");
  for (const w of chars) {
    const px = Math.ceil((w + 2) * WINDOW.chPx);
    left.push(left[left.length - 1] + px);
    const col = document.createElement("col");
    col.style.width = `${px}px`;
    cols.append(col);
  }
  if (table.querySelector("colgroup")) table.querySelector("colgroup").replaceWith(cols);
  else table.tHead.before(cols);
  table.style.width = `max(100%, ${left[left.length - 1]}px)`;
  table.tHead.rows[0].replaceChildren(...meta.map((m, i) => {
    const th = document.createElement("th");
    th.scope = "col";
    if (numeric[i]) th.className = "num";
    const name = document.createElement("span");
    name.textContent = m.name;
    const type = document.createElement("span");
    type.className = "col-type";
    type.textContent = m.type || "";
    th.append(name, type);
    return th;
  }));
  table.setAttribute("aria-rowcount", String(rows.length + 1));
  table.setAttribute("aria-colcount", String(meta.length));
  const view = { table, meta, rows, numeric, chars, left, first: -1, last: -1, from: -1,
    to: -1 };
  tableViews.set(table, view);
  const box = table.parentElement;
  if (!box.dataset.windowed) {
    box.dataset.windowed = "yes";
    let pending = false;
    box.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        drawWindow(tableViews.get(table));
      });
    }, { passive: true });
  }
  box.scrollTop = 0;
  box.scrollLeft = 0;
  drawWindow(view, false, true);
}

// The width of a digit in the tables' font (what CSS calls 1ch), once.
function digitWidth(table) {
  const context = document.createElement("canvas").getContext("2d");
  context.font = getComputedStyle(table).font;
  return context.measureText("0").width || 8;
}

// Draws the cells in the box's view, and a few more on each side, unless those drawn
// already cover the view (or `again`); `atOrigin` when the box was just scrolled to its
// top left (reading where it is scrolled would lay the page out).
function drawWindow(view, again, atOrigin) {
  const { table, rows, meta, left } = view;
  const box = table.parentElement;
  // Every row is one line, so one height: measured once, on the first row drawn.
  const rowPx = WINDOW.rowPx || 32;
  // The box is at most 70vh high and the window wide (dashboard.css): reading the window's
  // size, unlike the box's, does not lay the page out.
  const visible = Math.ceil(window.innerHeight * 0.7 / rowPx) + 1;
  const top = atOrigin ? 0 : Math.max(0, box.scrollTop - table.tHead.offsetHeight);
  const x = atOrigin ? 0 : box.scrollLeft;
  const from = Math.min(Math.floor(top / rowPx), Math.max(0, rows.length - visible));
  const to = Math.min(rows.length, from + visible);
  let c0 = 0;
  while (c0 < meta.length - 1 && left[c0 + 1] <= x) c0 += 1;
  let c1 = c0;
  while (c1 < meta.length && left[c1] < x + window.innerWidth) c1 += 1;
  if (!again && view.first <= from && to <= view.last && view.from <= c0 && c1 <= view.to) {
    return;
  }
  const first = Math.max(0, from - WINDOW.rows), last = Math.min(rows.length, to + WINDOW.rows);
  const cf = Math.max(0, c0 - WINDOW.cols), cl = Math.min(meta.length, c1 + WINDOW.cols);
  Object.assign(view, { first, last, from: cf, to: cl });
  // One row of the cells drawn, empty, cloned for each row; the columns left out on
  // either side are one blank cell each.
  const template = document.createElement("tr");
  const gap = (span) => {
    const td = document.createElement("td");
    td.className = "gap";
    td.colSpan = span;
    td.setAttribute("aria-hidden", "true");
    return td;
  };
  if (cf) template.append(gap(cf));
  for (let i = cf; i < cl; i++) {
    const td = document.createElement("td");
    if (view.numeric[i]) td.className = "num";
    if (cf || cl < meta.length) td.setAttribute("aria-colindex", String(i + 1));
    td.append("");
    template.append(td);
  }
  if (cl < meta.length) template.append(gap(meta.length - cl));
  const out = document.createDocumentFragment();
  const spacer = (px) => {
    const tr = document.createElement("tr");
    tr.className = "spacer";
    tr.setAttribute("aria-hidden", "true");
    const td = document.createElement("td");
    td.colSpan = meta.length;
    td.style.height = `${px}px`;
    tr.append(td);
    return tr;
  };
  if (first) out.append(spacer(first * rowPx));
  for (let r = first; r < last; r++) {
    const row = rows[r];
    const tr = template.cloneNode(true);
    tr.setAttribute("aria-rowindex", String(r + 2));  // the header is row 1
    let td = cf ? tr.firstChild.nextSibling : tr.firstChild;
    for (let i = cf; i < cl; i++, td = td.nextSibling) {
      const value = row[meta[i].name];
      const text = cellText(value);
      td.firstChild.data = text;
      if (value === null || value === undefined) td.className = "null";
      if (text.length > view.chars[i]) td.title = text;  // cut short on screen
    }
    out.append(tr);
  }
  if (last < rows.length) out.append(spacer((rows.length - last) * rowPx));
  table.tBodies[0].replaceChildren(out);
  if (!WINDOW.rowPx && last > first && !box.closest("[hidden]")) {
    WINDOW.rowPx = table.tBodies[0].querySelector("tr[aria-rowindex]").offsetHeight;
    if (WINDOW.rowPx !== rowPx) drawWindow(view, true);
  }
}

function cellText(value) {
  if (value === null || value === undefined) return "NULL";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// Sampling: on Cloudflare a stored point can stand for several written ones, so a count
// or sum that leaves out _sample_interval is right here and low there at volume.
function countsUnsampled(query) {
  const code = query.replace(/'(?:[^'\\]|\\.)*'/g, "''").replace(/--[^\n]*/g, "")
    .replace(/\/\*[\s\S]*?\*\//g, "");
  if (/\bcount(If)?\s*\(/i.test(code)) return true;
  const sums = /\bsum(If)?\s*\(/gi;
  let m;
  while ((m = sums.exec(code))) {
    let depth = 1, i = sums.lastIndex;
    for (; i < code.length && depth; i++) {
      if (code[i] === "(") depth += 1; else if (code[i] === ")") depth -= 1;
    }
    if (!/_sample_interval/i.test(code.slice(sums.lastIndex, i))) return true;
  }
  return false;
}

function samplingNote(query) {
  const note = $("sampling-note");
  const show = countsUnsampled(query);
  note.hidden = !show;
  note.textContent = show ? "Analytics Engine samples at volume: on Cloudflare one stored " +
    "point can stand for several written ones (its _sample_interval). This query counts " +
    "with count() or a sum without _sample_interval: right here, where every point is " +
    "kept, and too low on Cloudflare at scale. Count with SUM(_sample_interval), and sum " +
    "a value with SUM(value * _sample_interval)." : "";
}

// -- the answer as a chart --------------------------------------------------------------

// A DateTime column for the time and numeric columns for the values; the other columns
// (a worker, a route) split the values into one line each.
function chartable(meta) {
  const time = meta.find((m) => TIME_TYPE.test(m.type || ""));
  const values = meta.filter((m) => NUMERIC_TYPE.test(m.type || ""));
  if (!time || !values.length) return null;
  const groups = meta.filter((m) => !TIME_TYPE.test(m.type || "") && !values.includes(m));
  return { time, values, groups };
}

function timeOf(value) {
  const text = String(value);
  // Analytics Engine writes DateTime as "YYYY-MM-DD hh:mm:ss" and Date as "YYYY-MM-DD", UTC.
  return Date.parse(/^\d{4}-\d\d-\d\d$/.test(text) ? `${text}T00:00:00Z`
    : text.replace(" ", "T") + (/[Zz]|[+-]\d\d:?\d\d$/.test(text) ? "" : "Z"));
}

function drawAnswerChart(chart, rows) {
  const series = new Map();
  for (const row of rows) {
    const t = timeOf(row[chart.time.name]);
    if (!Number.isFinite(t)) continue;
    const group = chart.groups.map((g) => cellText(row[g.name])).join(" ");
    for (const column of chart.values) {
      const value = row[column.name];
      if (value === null || value === undefined) continue;
      const name = [group, chart.values.length > 1 || !group ? column.name : ""]
        .filter(Boolean).join(" ");
      if (!series.has(name)) series.set(name, []);
      series.get(name).push({ t, v: Number(value), label: [row[chart.time.name], value] });
    }
  }
  const times = [...series.values()].flat().map((p) => p.t);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const svg = $("result-chart");
  const names = [...series.keys()].sort();
  svg.setAttribute("aria-label", `Query results over time: ${names.length} ` +
    `${names.length === 1 ? "line" : "lines"} of ${chart.values.map((c) => c.name).join(", ")}` +
    ` by ${chart.time.name}`);
  const drawn = drawLines(svg, series, { t0, t1: t1 > t0 ? t1 : t0 + 1, H: 320,
    markers: times.length <= MAX_MARKERS, empty: "No rows to draw." });
  const legend = $("result-legend");
  legend.replaceChildren();
  drawn.forEach(([name, color]) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.borderTopColor = color;
    li.append(swatch, name);
    legend.append(li);
  });
  if (names.length > MAX_SERIES) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = `the first ${MAX_SERIES} of ${names.length} lines are drawn`;
    legend.append(li);
  }
}

// Lines over time: series is name → [{t (ms), v, label: [time, value] as answered}];
// markers: whether to draw each point as a dot (or which). Returns [name, colour] of each
// line drawn.
function drawLines(svg, series, { t0, t1, H, markers, empty, nothing }) {
  const W = 900, L = 70, R = 16, T = 14, B = 34;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const names = [...series.keys()].sort().slice(0, MAX_SERIES);
  const values = names.flatMap((n) => series.get(n).map((p) => p.v)).filter(Number.isFinite);
  if (!values.length || nothing) {
    emptyText(svg, W, H, empty);
    return [];
  }
  let lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  hi = hi > 0 ? niceCeil(hi) : 0;
  lo = lo < 0 ? -niceCeil(-lo) : 0;
  if (hi === lo) hi = lo + 1;
  const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    line(svg, L, y(v), W - R, y(v), i ? "grid" : "axis");
    text(svg, L - 8, y(v) + 4, compact(v), "end");
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6;
    text(svg, x(t), H - 12, axisTime(t, t1 - t0), i === 0 ? "start" : i === 6 ? "end" : "middle");
  }
  return names.map((name, i) => {
    const color = `var(${PALETTE[i % PALETTE.length]})`;
    const points = series.get(name).filter((p) => Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", points.map((p, j) =>
      `${j ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(""));
    path.setAttribute("class", "series");
    path.style.fill = "none";
    path.style.stroke = color;
    path.setAttribute("stroke-width", "2");
    path.dataset.series = name;
    const title = document.createElementNS(SVG, "title");
    title.textContent = name;
    path.append(title);
    svg.append(path);
    const marked = typeof markers === "function" ? markers : () => markers || points.length === 1;
    for (const p of points.filter(marked)) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(p.t).toFixed(1));
      dot.setAttribute("cy", y(p.v).toFixed(1));
      dot.setAttribute("r", "3");
      dot.setAttribute("class", "point");
      dot.style.fill = color;
      dot.dataset.series = name;
      dot.dataset.t = String(p.label[0]);
      dot.dataset.v = String(p.label[1]);
      const tip = document.createElementNS(SVG, "title");
      tip.textContent = `${name}: ${p.label[1]} at ${p.label[0]}`;
      dot.append(tip);
      svg.append(dot);
    }
    return [name, color];
  });
}

function compact(v) {
  return Number(v).toLocaleString("en", { notation: "compact", maximumFractionDigits: 2 });
}

function axisTime(ms, span) {
  const iso = new Date(ms).toISOString();
  if (span > 2 * 86400e3) return `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;
  return span > 120e3 ? iso.slice(11, 16) : iso.slice(11, 19);
}

// -- downloads --------------------------------------------------------------------------

// The answer shown, all its rows: as CSV (RFC 4180, a header of the column names), or as
// JSON, the body /query answered.
function download(kind) {
  const answer = explore.answer;
  if (!answer) return;
  const body = kind === "csv" ? toCsv(answer.meta, answer.rows) : answer.text;
  const type = kind === "csv" ? "text/csv;charset=utf-8" : "application/json";
  const url = URL.createObjectURL(new Blob([body], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `query-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}Z.${kind}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function toCsv(meta, rows) {
  const field = (value) => {
    if (value === null || value === undefined) return "";
    const s = typeof value === "object" ? JSON.stringify(value) : String(value);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = [meta.map((m) => field(m.name)).join(",")];
  for (const row of rows) lines.push(meta.map((m) => field(row[m.name])).join(","));
  return lines.join("\r\n") + "\r\n";
}

// -- recent queries (this browser's localStorage: queries only, never the key) ----------

function recentQueries() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_ITEM) || "[]");
    return Array.isArray(list) ? list.filter((q) => typeof q === "string") : [];
  } catch (e) {
    return [];
  }
}

function remember(query) {
  const list = [query, ...recentQueries().filter((q) => q !== query)]
    .slice(0, state.queries.explore.recentQueries);
  try { localStorage.setItem(RECENT_ITEM, JSON.stringify(list)); } catch (e) { /* kept nowhere */ }
  drawRecent(list);
}

function drawRecent(list) {
  $("recent").querySelector("summary").textContent = `Recent queries (${list.length})`;
  $("recent-list").replaceChildren(...list.map((query) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "recent-query";
    button.textContent = query;
    button.addEventListener("click", () => {
      $("sql").value = query;
      runBox();
    });
    li.append(button);
    return li;
  }));
}

// -- setting up -------------------------------------------------------------------------

function setUpExplore() {
  $("sql-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runBox();
  });
  $("sql").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runBox();
    }
  });
  $("sql").addEventListener("input", () => samplingNote($("sql").value));
  for (const input of document.querySelectorAll('input[name="show"]')) {
    input.addEventListener("change", () => {
      explore.show = input.value;
      showAs(input.value);
    });
  }
  $("download-csv").addEventListener("click", () => download("csv"));
  $("download-json").addEventListener("click", () => download("json"));
  $("dataset-edit").addEventListener("click", () => {
    $("sql").value = exploreSql("points", explore.dataset);
    runBox();
    $("sql").focus();
  });
  drawRecent(recentQueries());
}
