// Tests for the relay Worker, run in the real Workers runtime (workerd via
// Miniflare), not a mock. Run with `npm test` (Node 22 from node_modules).
//
// The Analytics Engine binding is replaced by a recording wrapped binding
// (test/fixtures/ae-recorder.js) so every test can assert exactly which data
// points reached writeDataPoint, not only the status code.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Miniflare } from "miniflare";
import { parseJsonc } from "./fixtures/jsonc.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG = parseJsonc(readFileSync(path.join(ROOT, "wrangler.jsonc"), "utf8"));

const OLD_KEY = "old-key-0123456789";
const NEW_KEY = "new-key-9876543210";
const THROW_ON_BLOB = "__make_writeDataPoint_throw__";

// One Miniflare per secret value. The relay's compatibility settings and AE
// binding name come from wrangler.jsonc, so the test runs what is deployed.
function startRelay(secret) {
  const binding = CONFIG.analytics_engine_datasets[0].binding;
  return new Miniflare({
    host: "127.0.0.1", // workerd listens; loopback only
    workers: [
      {
        name: "relay",
        modulesRoot: ROOT,
        modules: [
          { type: "ESModule", path: path.join(ROOT, "test/fixtures/harness.js") },
          { type: "ESModule", path: path.join(ROOT, CONFIG.main) },
        ],
        compatibilityDate: CONFIG.compatibility_date,
        compatibilityFlags: CONFIG.compatibility_flags,
        bindings: secret === undefined ? {} : { INTERNAL_KEY_BINDING: secret },
        wrappedBindings: { [binding]: { scriptName: "ae-recorder" } },
      },
      {
        name: "ae-recorder",
        modules: [{ type: "ESModule", path: path.join(ROOT, "test/fixtures/ae-recorder.js") }],
        bindings: { THROW_ON_BLOB },
      },
    ],
  });
}

let mf;
before(async () => {
  mf = startRelay(`${OLD_KEY}, ${NEW_KEY}`); // two keys: a rotation in progress
  await mf.ready;
});
after(async () => {
  await mf?.dispose();
});

// Sends a request and returns the status, the JSON body and the data points
// that reached the binding during it.
async function call(mfInstance, pathname, { method = "GET", key, body, rawBody } = {}) {
  const headers = {};
  if (key !== undefined) headers["X-Internal-Auth-Key"] = key;
  if (body !== undefined || rawBody !== undefined) headers["Content-Type"] = "application/json";
  const res = await mfInstance.dispatchFetch(`http://relay.internal${pathname}`, {
    method,
    headers,
    body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  const calls = await (await mfInstance.dispatchFetch("http://relay.internal/__test__/calls")).json();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null, calls };
}

const ingest = (body, key = NEW_KEY) => call(mf, "/ingest", { method: "POST", key, body });

const good = (n) => ({ blobs: [`worker-${n}`, "/webhook", "1"], doubles: [n, 24.5], indexes: [`req-${n}`] });

// --- configuration -------------------------------------------------------

describe("wrangler.jsonc", () => {
  test("mirrors the profile's configuration without an account id", () => {
    assert.equal(CONFIG.name, "analytics-relay");
    assert.equal(CONFIG.main, "src/index.js");
    assert.equal(CONFIG.compatibility_date, "2026-05-19");
    assert.deepEqual(CONFIG.compatibility_flags, ["nodejs_compat"]);
    assert.deepEqual(CONFIG.analytics_engine_datasets, [
      { binding: "ANALYTICS_ENGINE", dataset: "hoox_telemetry" },
    ]);
    assert.deepEqual(CONFIG.secrets, { required: ["INTERNAL_KEY_BINDING"] });
    assert.equal(CONFIG.account_id, undefined);
  });
});

describe("wrangler.jsonc, env platform (SPEC §6.1)", () => {
  const platform = CONFIG.env.platform;
  test("is named analytics-worker, the name the platform's service bindings reach", () => {
    assert.equal(platform.name, "analytics-worker");
    assert.deepEqual(platform.analytics_engine_datasets, [
      { binding: "ANALYTICS_ENGINE", dataset: "hoox-analytics" },
    ]);
  });
  test("produces and consumes one queue, with a dead-letter queue it can also write", () => {
    const [consumer] = platform.queues.consumers;
    assert.equal(platform.queues.consumers.length, 1);
    const producers = Object.fromEntries(platform.queues.producers.map((p) => [p.binding, p.queue]));
    assert.equal(producers.ANALYTICS_QUEUE, consumer.queue);
    assert.equal(producers.ANALYTICS_DEAD_LETTER, consumer.dead_letter_queue);
    assert.notEqual(consumer.queue, consumer.dead_letter_queue);
    assert.ok(consumer.max_retries >= 10);
  });
  test("forwards to the service on loopback by default, within 2 s", () => {
    assert.equal(platform.vars.ANALYTICS_SERVICE_URL, "http://127.0.0.1:8787");
    assert.equal(platform.vars.ANALYTICS_FORWARD_TIMEOUT_MS, "2000");
    assert.notEqual(CONFIG.dev.port, 8787); // wrangler dev beside the service, not on it
  });
});

describe("outside env platform", () => {
  test("/track/* is not a route and /health keeps its shape", async () => {
    const track = await call(mf, "/track/trade", { method: "POST", key: NEW_KEY, body: {} });
    assert.equal(track.status, 404);
    assert.deepEqual(track.calls, []);
    const health = await call(mf, "/health");
    assert.deepEqual(health.json, { status: "ok" });
  });
});

describe("as deployed", () => {
  // No harness, no recorder: src/index.js as the entry module with
  // Miniflare's own local Analytics Engine binding, configured as in
  // wrangler.jsonc. Proves the module loads and the binding name matches;
  // what gets written is checked by the recorder tests below.
  test("src/index.js with the configured dataset binding accepts a batch", async () => {
    const plain = new Miniflare({
      host: "127.0.0.1",
      modules: true,
      scriptPath: path.join(ROOT, CONFIG.main),
      compatibilityDate: CONFIG.compatibility_date,
      compatibilityFlags: CONFIG.compatibility_flags,
      bindings: { INTERNAL_KEY_BINDING: NEW_KEY },
      analyticsEngineDatasets: Object.fromEntries(
        CONFIG.analytics_engine_datasets.map(({ binding, dataset }) => [binding, { dataset }]),
      ),
    });
    try {
      const res = await plain.dispatchFetch("http://relay.internal/ingest", {
        method: "POST",
        headers: { "X-Internal-Auth-Key": NEW_KEY },
        body: JSON.stringify({ batchId: "smoke", points: [good(1), good(2)] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { success: true, written: 2, batchId: "smoke" });
    } finally {
      await plain.dispose();
    }
  });
});

// --- routes ----------------------------------------------------------------

describe("routes", () => {
  test("GET /health answers ok without auth", async () => {
    const r = await call(mf, "/health");
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: "ok" });
  });

  test("unknown route is 404 JSON", async () => {
    const r = await call(mf, "/track/batch", { method: "POST", key: NEW_KEY, body: { points: [good(1)] } });
    assert.equal(r.status, 404);
    assert.equal(r.json.success, false);
    assert.match(r.json.error, /Not found/);
    assert.deepEqual(r.calls, []);
  });

  test("wrong method is 405 JSON with Allow", async () => {
    const get = await call(mf, "/ingest", { key: NEW_KEY });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("Allow"), "POST");
    assert.equal(get.json.success, false);

    const post = await call(mf, "/health", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("Allow"), "GET, HEAD");
  });
});

// --- auth ------------------------------------------------------------------

describe("auth", () => {
  test("missing key is 401 and writes nothing", async () => {
    const r = await call(mf, "/ingest", { method: "POST", body: { batchId: "b", points: [good(1)] } });
    assert.equal(r.status, 401);
    assert.deepEqual(r.json, { success: false, error: "Unauthorized" });
    assert.deepEqual(r.calls, []);
  });

  test("wrong key (same length, and empty) is 401 and writes nothing", async () => {
    for (const key of ["new-key-9876543211", "", `${OLD_KEY},${NEW_KEY}`]) {
      const r = await ingest({ batchId: "b", points: [good(1)] }, key);
      assert.equal(r.status, 401, `key ${JSON.stringify(key)}`);
      assert.deepEqual(r.json, { success: false, error: "Unauthorized" });
      assert.deepEqual(r.calls, []);
    }
  });

  test("both the old and the rotated key are accepted", async () => {
    for (const key of [OLD_KEY, NEW_KEY]) {
      const r = await ingest({ batchId: "rot", points: [good(7)] }, key);
      assert.equal(r.status, 200);
      assert.deepEqual(r.calls, [good(7)]);
    }
  });

  test("without the secret, /ingest is 503 naming it; /health still works", async () => {
    const bare = startRelay(undefined);
    try {
      const r = await call(bare, "/ingest", { method: "POST", key: NEW_KEY, body: { points: [good(1)] } });
      assert.equal(r.status, 503);
      assert.equal(r.json.success, false);
      assert.match(r.json.error, /INTERNAL_KEY_BINDING/);
      assert.match(r.json.error, /wrangler secret put/);
      assert.deepEqual(r.calls, []);
      assert.equal((await call(bare, "/health")).status, 200);
    } finally {
      await bare.dispose();
    }
  });
});

// --- valid batches -------------------------------------------------------

describe("valid batches", () => {
  test("writes exactly the given points, in order", async () => {
    const points = [
      good(1),
      { blobs: ["only-blobs", null, "ünïcödé ✓"] },
      { doubles: [0, -1.5, 1e308, Number.MIN_VALUE] },
      { indexes: [null] },
      {},
      good(2),
    ];
    const r = await ingest({ batchId: "batch-42", points });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true, written: 6, batchId: "batch-42" });
    assert.deepEqual(r.calls, points);
  });

  test("points exactly at every limit are accepted", async () => {
    const points = [
      { blobs: Array.from({ length: 20 }, (_, i) => `b${i}`) },
      { doubles: Array.from({ length: 20 }, (_, i) => i + 0.5) },
      { indexes: ["é".repeat(48)] }, // 96 bytes UTF-8, 48 characters
      { blobs: ["€".repeat(5333), "a"] }, // 15,999 + 1 = 16,000 bytes
    ];
    const r = await ingest({ batchId: "edge", points });
    assert.equal(r.status, 200);
    assert.equal(r.json.written, 4);
    assert.deepEqual(r.calls, points);
  });

  test("250 points are written, all of them, in order", async () => {
    const points = Array.from({ length: 250 }, (_, i) => good(i));
    const r = await ingest({ batchId: "full", points });
    assert.equal(r.status, 200);
    assert.equal(r.json.written, 250);
    assert.deepEqual(r.calls, points);
  });

  test("an empty batch writes nothing and says so; batchId is optional", async () => {
    const r = await ingest({ points: [] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true, written: 0, batchId: null });
    assert.deepEqual(r.calls, []);
  });
});

// --- invalid points: the whole batch is refused ---------------------------

describe("a batch with one bad point writes nothing", () => {
  const cases = [
    ["21 blobs", { blobs: Array(21).fill("x") }, /too many blobs: 21/],
    ["21 doubles", { doubles: Array(21).fill(1) }, /too many doubles: 21/],
    ["a string double", { doubles: [1, "2.5"] }, /doubles\[1\] must be a finite number/],
    ["a null double", { doubles: [null] }, /doubles\[0\] must be a finite number/],
    ["a boolean double", { doubles: [true] }, /doubles\[0\] must be a finite number/],
    ["2 indexes", { indexes: ["a", "b"] }, /too many indexes: 2/],
    ["a 97-byte index", { indexes: ["é".repeat(48) + "a"] }, /indexes\[0\] is 97 bytes/],
    ["a numeric index", { indexes: [42] }, /indexes\[0\] must be a string or null/],
    ["16,001 bytes of multibyte blobs", { blobs: ["€".repeat(5333), "ab"] }, /blobs total 16001 bytes/],
    ["a numeric blob", { blobs: ["ok", 3] }, /blobs\[1\] must be a string or null/],
    ["a null point", null, /point must be an object/],
    ["an array point", [["a"], [1]], /point must be an object/],
    ["a string point", "blob", /point must be an object/],
    ["blobs not an array", { blobs: "a,b" }, /blobs must be an array/],
    ["doubles not an array", { doubles: { 0: 1 } }, /doubles must be an array/],
    ["indexes not an array", { indexes: "req-1" }, /indexes must be an array/],
    ["indexes null", { indexes: null }, /indexes must be an array/],
    ["an unknown field", { blobs: ["a"], timestamp: 123 }, /unknown field "timestamp"/],
  ];

  for (const [name, bad, reason] of cases) {
    test(name, async () => {
      const r = await ingest({ batchId: "bad", points: [good(0), bad, good(2)] });
      assert.equal(r.status, 400);
      assert.equal(r.json.success, false);
      assert.match(r.json.error, /nothing was written/);
      assert.ok(r.json.details.length >= 1);
      for (const d of r.json.details) assert.equal(d.index, 1, JSON.stringify(d));
      assert.ok(r.json.details.some((d) => reason.test(d.reason)), JSON.stringify(r.json.details));
      assert.deepEqual(r.calls, [], "no point may reach the binding");
    });
  }

  test("251 points", async () => {
    const r = await ingest({ batchId: "big", points: Array.from({ length: 251 }, (_, i) => good(i)) });
    assert.equal(r.status, 400);
    assert.match(r.json.error, /Too many points: 251/);
    assert.deepEqual(r.json.details, [{ index: 250, reason: "over the limit of 250 points per request" }]);
    assert.deepEqual(r.calls, []);
  });

  test("every bad point is reported, even when the bad one is last", async () => {
    const points = [good(0), { blobs: Array(21).fill("x") }, good(2), { doubles: ["x"], indexes: ["a", "b"] }];
    const r = await ingest({ batchId: "many", points });
    assert.equal(r.status, 400);
    assert.match(r.json.error, /^2 of 4 points are invalid/);
    assert.deepEqual(r.json.details, [
      { index: 1, reason: "too many blobs: 21 (at most 20)" },
      { index: 3, reason: "doubles[0] must be a finite number" },
      { index: 3, reason: "too many indexes: 2 (at most 1)" },
    ]);
    assert.deepEqual(r.calls, []);
  });
});

// --- malformed requests --------------------------------------------------

describe("malformed requests", () => {
  const post = (rawBody) => call(mf, "/ingest", { method: "POST", key: NEW_KEY, rawBody });

  test("malformed JSON is 400 and writes nothing", async () => {
    const r = await post('{"batchId": "x", "points": [');
    assert.equal(r.status, 400);
    assert.equal(r.json.success, false);
    assert.match(r.json.error, /^Malformed JSON/);
    assert.deepEqual(r.calls, []);
  });

  test("invalid UTF-8 is malformed", async () => {
    const r = await post(new Uint8Array([0x7b, 0xff, 0x7d]));
    assert.equal(r.status, 400);
    assert.match(r.json.error, /^Malformed JSON/);
  });

  test("a body that is not an object, or lacks points, is 400", async () => {
    for (const [raw, msg] of [
      ["[]", /Body must be a JSON object/],
      ["null", /Body must be a JSON object/],
      ['{"batchId": "x"}', /points must be an array/],
      ['{"batchId": 5, "points": []}', /batchId must be a string/],
    ]) {
      const r = await post(raw);
      assert.equal(r.status, 400, raw);
      assert.match(r.json.error, msg);
      assert.deepEqual(r.json.details, []);
      assert.deepEqual(r.calls, []);
    }
  });

  test("a body over 4 MiB is 413 and writes nothing", async () => {
    const padding = "x".repeat(4 * 1024 * 1024);
    const r = await post(JSON.stringify({ batchId: "huge", points: [good(1)], padding }));
    assert.equal(r.status, 413);
    assert.equal(r.json.success, false);
    assert.match(r.json.error, /too large/);
    assert.deepEqual(r.calls, []);
  });
});

// --- binding failure -----------------------------------------------------

describe("writeDataPoint failure", () => {
  test("is 500, says so, and reports how many points were written before it", async () => {
    const points = [good(0), { blobs: [THROW_ON_BLOB] }, good(2)];
    const r = await ingest({ batchId: "boom", points });
    assert.equal(r.status, 500);
    assert.equal(r.json.success, false);
    assert.match(r.json.error, /writeDataPoint threw at point 1: simulated Analytics Engine failure/);
    assert.equal(r.json.written, 1);
    assert.equal(r.json.batchId, "boom");
    assert.deepEqual(r.calls, [good(0)]);
  });
});
