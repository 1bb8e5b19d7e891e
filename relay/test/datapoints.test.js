// The relay's entrypoint AnalyticsEngineDataset (SPEC §6.2), in the real Workers runtime
// (workerd via Miniflare): a caller Worker with two swapped dataset bindings
// (test/fixtures/datapoints-caller) calls writeDataPoint across a real service binding,
// and the relay's requests to the Python service reach a stand-in that records them.
// Every limit is tested at its edge: the last accepted value and the first refused one.
// The real service behind the real route is tested from pytest
// (tests/test_local_datasets.py).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Miniflare } from "miniflare";
import { parseJsonc } from "./fixtures/jsonc.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG = parseJsonc(readFileSync(path.join(ROOT, "wrangler.jsonc"), "utf8"));
const CALLER_DIR = path.join(ROOT, "test/fixtures/datapoints-caller");
const CALLER = parseJsonc(readFileSync(path.join(CALLER_DIR, "wrangler.jsonc"), "utf8"));
const KEYS = "old-key-0123456789, new-key-9876543210";

// Records what the relay sends to the service, and answers as the service does.
const SERVICE = `
const received = [];
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__received") return Response.json(received.splice(0));
    received.push({
      url: request.url,
      key: request.headers.get("X-Internal-Auth-Key"),
      idempotencyKey: request.headers.get("Idempotency-Key"),
      contentType: request.headers.get("Content-Type"),
      body: await request.json(),
    });
    return Response.json({ success: true, accepted: 1, duplicates: 0 });
  },
};`;

let mf;
let logs = "";
before(async () => {
  const services = Object.fromEntries(CALLER.services.map((s) => [
    s.binding, { name: s.service, entrypoint: s.entrypoint, props: s.props },
  ]));
  mf = new Miniflare({
    host: "127.0.0.1",
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (d) => { logs += d; });
      stderr.on("data", (d) => { logs += d; });
    },
    workers: [
      {
        name: "caller",
        modulesRoot: CALLER_DIR,
        modules: [{ type: "ESModule", path: path.join(CALLER_DIR, CALLER.main) }],
        compatibilityDate: CALLER.compatibility_date,
        compatibilityFlags: CALLER.compatibility_flags,
        serviceBindings: {
          ...services,
          // A binding whose props name no dataset.
          NO_DATASET: { name: "analytics-worker", entrypoint: "AnalyticsEngineDataset" },
        },
      },
      {
        name: "analytics-worker",
        modulesRoot: ROOT,
        modules: [{ type: "ESModule", path: path.join(ROOT, CONFIG.main) }],
        compatibilityDate: CONFIG.compatibility_date,
        compatibilityFlags: CONFIG.compatibility_flags,
        bindings: { ...CONFIG.env.dev.vars, ANALYTICS_SERVICE_URL: "http://service.test", INTERNAL_KEY_BINDING: KEYS },
        outboundService: "service",
      },
      { name: "service", modules: true, script: SERVICE },
    ],
  });
  await mf.ready;
});
after(async () => {
  await mf?.dispose();
});

async function write(writes) {
  const res = await mf.dispatchFetch("http://caller.test/", {
    method: "POST",
    body: JSON.stringify({ writes }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

// What reached the service, waiting (bounded) until `until(all so far)` holds.
async function receivedUntil(until, timeoutMs = 10_000) {
  const service = await mf.getWorker("service");
  const out = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    out.push(...await (await service.fetch("http://service.test/__received")).json());
    if (until(out)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

// What reached the service, waiting (bounded) until `n` requests have.
function received(n, timeoutMs = 10_000) {
  return receivedUntil((out) => out.length >= n, timeoutMs);
}

// What arrived besides a good point written last (awaited, on `binding`), once it has:
// each point's delivery starts when it is written, in order, so anything written before
// the sentinel (a refused point wrongly sent among it) has arrived when the sentinel has.
let sentinels = 0;
async function nothingMoreArrives(binding = "EVENTS") {
  const id = `sentinel-${++sentinels}`;
  assert.deepEqual(await write([{ binding, point: { blobs: [id] }, awaited: true }]),
    [{ awaited: true, ok: true }]);
  const isSentinel = (r) => r.body.points?.[0]?.blobs?.[0] === id;
  const out = await receivedUntil((got) => got.some(isSentinel));
  assert.ok(out.some(isSentinel), `the sentinel ${id} did not arrive`);
  return out.filter((r) => !isSentinel(r));
}

const text = (s) => ({ $text: s });

describe("writeDataPoint through the swapped binding", () => {
  test("each point goes to POST /track/datapoints of its dataset, with a fresh Idempotency-Key", async () => {
    const results = await write([
      { binding: "EVENTS", point: { blobs: ["signup", text("/home")], doubles: [1, 2.5], indexes: ["u1"] }, awaited: true },
      { binding: "TIMINGS", point: { doubles: [12.5], indexes: [text("route-a")] }, awaited: true },
    ]);
    assert.deepEqual(results, [{ awaited: true, ok: true }, { awaited: true, ok: true }]);
    const got = await received(2);
    assert.equal(got.length, 2);
    const byDataset = Object.fromEntries(got.map((r) => [r.body.dataset, r]));
    assert.deepEqual(byDataset.app_events.body, {
      dataset: "app_events",
      points: [{ blobs: ["signup", "/home"], doubles: [1, 2.5], indexes: ["u1"] }],
    });
    assert.deepEqual(byDataset.app_timings.body, {
      dataset: "app_timings",
      points: [{ doubles: [12.5], indexes: ["route-a"] }],
    });
    for (const r of got) {
      assert.equal(r.url, "http://service.test/track/datapoints");
      assert.equal(r.key, "new-key-9876543210"); // the newest key of a rotation
      assert.equal(r.contentType, "application/json");
      assert.match(r.idempotencyKey, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    assert.notEqual(got[0].idempotencyKey, got[1].idempotencyKey);
  });

  test("calls never awaited land, though the caller answers right after making them", async () => {
    const n = 20;
    const writes = Array.from({ length: n }, (_, i) => ({
      binding: i % 2 ? "EVENTS" : "TIMINGS",
      point: { blobs: [`unawaited-${i}`], doubles: [i] },
      awaited: false,
    }));
    const results = await write(writes);
    assert.equal(results.length, n);
    const got = await received(n);
    assert.deepEqual(
      got.map((r) => r.body.points[0].blobs[0]).sort(),
      writes.map((w) => w.point.blobs[0]).sort(),
    );
    assert.equal(new Set(got.map((r) => r.idempotencyKey)).size, n);
    assert.deepEqual(await nothingMoreArrives(), []); // and each once
  });

  test("ArrayBuffer blobs and index are sent as the UTF-8 text they hold; null blobs as empty", async () => {
    await write([{
      binding: "EVENTS",
      point: {
        blobs: [text("héllo ✓"), null, "plain", { $bytes: [0x66, 0x6f, 0xff] }],
        indexes: [{ $bytes: [0xe2, 0x9c, 0x93] }],
      },
      awaited: true,
    }]);
    const [r] = await received(1);
    assert.deepEqual(r.body.points[0], {
      blobs: ["héllo ✓", "", "plain", "fo\uFFFD"], // bytes that are not UTF-8 become U+FFFD
      indexes: ["✓"],
    });
  });

  test("an empty point, and writeDataPoint() with no argument, are written as Analytics Engine writes them", async () => {
    await write([
      { binding: "EVENTS", point: {}, awaited: true },
      { binding: "EVENTS", awaited: true },
      { binding: "EVENTS", point: { indexes: [], blobs: [], doubles: [] }, awaited: true },
    ]);
    const got = await received(3);
    assert.deepEqual(got.map((r) => r.body.points[0]), [{}, {}, { blobs: [], doubles: [] }]);
  });
});

// Each limit at its edge: [name, the last point accepted, the first refused, its message].
const multibyte = "é"; // 2 bytes UTF-8
const EDGES = [
  ["20 blobs", { blobs: Array(20).fill("b") }, { blobs: Array(21).fill("b") },
    "writeDataPoint(): Maximum of 20 blobs supported."],
  ["20 doubles", { doubles: Array(20).fill(1) }, { doubles: Array(21).fill(1) },
    "writeDataPoint(): Maximum of 20 doubles supported."],
  ["one index", { indexes: ["a"] }, { indexes: ["a", "b"] },
    "writeDataPoint(): Maximum of 1 indexes supported."],
  ["an index of 96 bytes (UTF-8)", { indexes: [multibyte.repeat(48)] }, { indexes: [multibyte.repeat(48) + "x"] },
    "writeDataPoint(): Size of indexes[0] exceeds 96 bytes."],
  ["an ArrayBuffer index of 96 bytes", { indexes: [{ $bytes: Array(96).fill(0x61) }] },
    { indexes: [{ $bytes: Array(97).fill(0x61) }] },
    "writeDataPoint(): Size of indexes[0] exceeds 96 bytes."],
  ["blobs of 16,000 bytes together (UTF-8)", { blobs: Array(20).fill(multibyte.repeat(400)) },
    { blobs: [...Array(19).fill(multibyte.repeat(400)), multibyte.repeat(400) + "x"] },
    "writeDataPoint(): Cumulative size of blobs exceeds 16000 bytes."],
  ["blobs of 16,000 bytes together, strings and ArrayBuffers",
    { blobs: ["x".repeat(8000), { $text: "y".repeat(8000) }] },
    { blobs: ["x".repeat(8000), { $text: "y".repeat(8001) }] },
    "writeDataPoint(): Cumulative size of blobs exceeds 16000 bytes."],
];
const BAD_TYPES = [
  ["a blob that is a number", { blobs: ["a", 5] }, "writeDataPoint(): blobs[1] must be a string, an ArrayBuffer or null"],
  ["a double that is a string", { doubles: [1, "2"] }, "writeDataPoint(): doubles[1] must be a finite number"],
  ["a double that is null", { doubles: [null] }, "writeDataPoint(): doubles[0] must be a finite number"],
  ["blobs that are not an array", { blobs: "abc" }, "writeDataPoint(): blobs must be an array"],
  ["an index that is a number", { indexes: [7] }, "writeDataPoint(): indexes[0] must be a string or an ArrayBuffer"],
  ["a point that is a string", "point", "writeDataPoint(): the data point must be an object"],
];

describe("Analytics Engine's limits, each at its edge", () => {
  for (const [name, ok, over, message] of EDGES) {
    test(name, async () => {
      const results = await write([
        { binding: "EVENTS", point: ok, awaited: true },
        { binding: "EVENTS", point: over, awaited: true },
      ]);
      assert.deepEqual(results, [
        { awaited: true, ok: true },
        // The real binding's error, type and message, as an awaited call sees it.
        { awaited: true, ok: false, name: "TypeError", message },
      ]);
      const got = await received(1);
      assert.equal(got.length, 1);
      assert.deepEqual(await nothingMoreArrives(), []); // the refused point is never sent
      assert.ok(logs.includes(`writeDataPoint to app_events refused: ${message.slice("writeDataPoint(): ".length)}`), logs);
    });
  }

  for (const [name, point, message] of BAD_TYPES) {
    test(`refuses ${name}`, async () => {
      const results = await write([{ binding: "EVENTS", point, awaited: true }]);
      assert.deepEqual(results, [{ awaited: true, ok: false, name: "TypeError", message }]);
      assert.deepEqual(await nothingMoreArrives(), []);
    });
  }

  test("a refused point not awaited is logged by the relay and never sent", async () => {
    const before = logs.length;
    await write([
      { binding: "TIMINGS", point: { doubles: Array(21).fill(0) }, awaited: false },
      { binding: "TIMINGS", point: { doubles: [1] }, awaited: false },
    ]);
    const got = await received(1);
    assert.deepEqual(got.map((r) => r.body.points[0]), [{ doubles: [1] }]);
    assert.deepEqual(await nothingMoreArrives("TIMINGS"), []);
    assert.match(logs.slice(before), /writeDataPoint to app_timings refused: Maximum of 20 doubles supported\./);
  });

  test("a binding without a dataset in its props is refused", async () => {
    const results = await write([{ binding: "NO_DATASET", point: { doubles: [1] }, awaited: true }]);
    assert.equal(results[0].ok, false);
    assert.match(results[0].message, /props/);
    assert.deepEqual(await nothingMoreArrives(), []);
  });
});
