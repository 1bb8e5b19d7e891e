import { WorkerEntrypoint } from "cloudflare:workers";

// analytics-relay: the one place that holds the Analytics Engine binding.
//
// Analytics Engine has no REST write API: points can only be written from
// inside a Worker. The Python analytics-worker therefore replays its event log
// through this Worker (SPEC §6). It is deliberately dumb: it does not build
// data points, it only checks them against Analytics Engine's limits and
// writes them. A batch is all-or-nothing at the validation step, so a replay
// never leaves a half-written batch because of one bad point.

// Analytics Engine limits (SPEC §2). writeDataPoint itself throws on most of
// these in production, but locally it accepts anything, and throwing halfway
// through a batch would leave earlier points written: so we check them all
// before writing any.
const LIMITS = Object.freeze({
  maxPoints: 250, // writeDataPoint calls per Worker invocation
  maxBlobs: 20,
  maxDoubles: 20,
  maxIndexes: 1,
  maxIndexBytes: 96,
  maxBlobBytes: 16_000, // all blobs of one point together, UTF-8
  maxBodyBytes: 4 * 1024 * 1024, // our own cap: 250 full points fit easily
});

const POINT_FIELDS = new Set(["blobs", "doubles", "indexes"]);
const SECRET_NAME = "INTERNAL_KEY_BINDING";
const AUTH_HEADER = "X-Internal-Auth-Key";
const IDEMPOTENCY_HEADER = "Idempotency-Key";
const encoder = new TextEncoder();

// The platform's front (SPEC §6.1): defaults of the vars that tune it.
const FRONT = Object.freeze({
  forwardTimeoutMs: 2_000, // ANALYTICS_FORWARD_TIMEOUT_MS
  retryBaseSeconds: 2, // ANALYTICS_RETRY_BASE_SECONDS: first queue retry
  retryMaxSeconds: 300, // ANALYTICS_RETRY_MAX_SECONDS: longest wait between retries
  // The service's own cap for /track/batch; a Queue message holds at most 128 KB, so a
  // body over maxQueuedBytes is answered 503 rather than queued when the service is away.
  maxBodyBytes: 1024 * 1024,
  maxQueuedBytes: 120 * 1024,
  devServiceUrl: "http://127.0.0.1:8787",
});
const ROUTE = /^[a-z][a-z0-9-]{0,63}$/;

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);

    if (pathname === "/health") {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return methodNotAllowed("GET, HEAD");
      }
      // No auth: load balancers and the Python service's status page poll it.
      if (isFront(env)) {
        // As the platform's analytics-worker, the platform's health shape, which its
        // workers' health checks read.
        return json(200, {
          status: "ok",
          success: true,
          result: { status: "ok", timestamp: new Date().toISOString(), service: "analytics-worker" },
        });
      }
      return json(200, { status: "ok" });
    }

    if (pathname.startsWith("/track/") && isFront(env)) {
      if (request.method !== "POST") return methodNotAllowed("POST");
      const route = pathname.slice("/track/".length);
      if (!ROUTE.test(route)) return error(404, `Not found: ${pathname}`);
      // A wrong key is the caller's to see at once, and is never queued, even while the
      // service is away (the service checks the key again).
      const denied = await checkAuth(request, env);
      if (denied) return denied;
      return forward(request, env, route);
    }

    if (pathname === "/ingest") {
      if (request.method !== "POST") return methodNotAllowed("POST");
      const denied = await checkAuth(request, env);
      if (denied) return denied;
      return ingest(request, env);
    }

    return error(404, `Not found: ${pathname}`);
  },

  // The same Worker consumes the queue of requests the service could not take.
  async queue(batch, env) {
    for (const message of batch.messages) {
      await deliver(message, env);
    }
  },
};

// --- any Worker's Analytics Engine binding, kept locally (SPEC §6.2) ----------

// Under `wrangler dev` a Worker swaps its dataset binding for a service binding to this
// entrypoint, with the dataset in the binding's props:
//   {"binding": "EVENTS", "service": "analytics-worker",
//    "entrypoint": "AnalyticsEngineDataset", "props": {"dataset": "my_events"}}
// and its unchanged `env.EVENTS.writeDataPoint({...})` lands in the service's log.
export class AnalyticsEngineDataset extends WorkerEntrypoint {
  // Analytics Engine code never awaits writeDataPoint, and a call that is not awaited
  // must still land: the delivery runs in this Worker's waitUntil, so it outlives both
  // this call and the caller's request. The method itself returns as soon as the point
  // is checked.
  //
  // A point the real binding would refuse is refused here too, with the real binding's
  // error: a TypeError whose message starts "writeDataPoint(): ". The real binding
  // throws it synchronously; across a service binding every call is a promise, so the
  // caller sees a rejected promise: an awaited call throws, one not awaited goes unseen
  // by the caller, so the relay logs every refusal itself.
  writeDataPoint(point) {
    const dataset = this.ctx.props?.dataset;
    if (typeof dataset !== "string" || dataset === "") {
      return refuse("(no dataset)", 'the binding has no "props": {"dataset": "<name>"}');
    }
    const { reason, value } = checkDataPoint(point);
    if (reason) return refuse(dataset, reason);
    this.ctx.waitUntil(deliverPoint(this.env, dataset, value));
  }
}

function refuse(dataset, reason) {
  console.error(`writeDataPoint to ${dataset} refused: ${reason}`);
  throw new TypeError(`writeDataPoint(): ${reason}`);
}

const utf8 = new TextDecoder(); // not fatal: bytes that are not UTF-8 become U+FFFD

// Checks one point in the order, and against the limits, of workerd's own
// writeDataPoint (src/workerd/api/analytics-engine-impl.h): the index, then the blobs,
// then the doubles; sizes in bytes as given (UTF-8 for strings). Returns the first
// reason it fails, or the point as the service takes it: blobs and the index as strings
// (ArrayBuffers decoded as UTF-8, null as ""), since the log stores text.
function checkDataPoint(point) {
  if (point === undefined) point = {}; // writeDataPoint() writes an empty point
  if (point === null || typeof point !== "object" || Array.isArray(point)) {
    return { reason: "the data point must be an object" };
  }
  const value = {};
  const { indexes, blobs, doubles } = point;

  if (indexes !== undefined) {
    if (!Array.isArray(indexes)) return { reason: "indexes must be an array" };
    if (indexes.length > LIMITS.maxIndexes) {
      return { reason: `Maximum of ${LIMITS.maxIndexes} indexes supported.` };
    }
    if (indexes.length === 1 && indexes[0] !== null && indexes[0] !== undefined) {
      const bytes = bytesOf(indexes[0]);
      if (bytes === null) return { reason: "indexes[0] must be a string or an ArrayBuffer" };
      if (bytes.byteLength > LIMITS.maxIndexBytes) {
        return { reason: `Size of indexes[0] exceeds ${LIMITS.maxIndexBytes} bytes.` };
      }
      value.indexes = [asText(indexes[0], bytes)];
    }
  }

  if (blobs !== undefined) {
    if (!Array.isArray(blobs)) return { reason: "blobs must be an array" };
    if (blobs.length > LIMITS.maxBlobs) {
      return { reason: `Maximum of ${LIMITS.maxBlobs} blobs supported.` };
    }
    let total = 0;
    value.blobs = [];
    for (let i = 0; i < blobs.length; i++) {
      const blob = blobs[i];
      if (blob === null || blob === undefined) {
        value.blobs.push(""); // an unset blob reads back as ""
        continue;
      }
      const bytes = bytesOf(blob);
      if (bytes === null) return { reason: `blobs[${i}] must be a string, an ArrayBuffer or null` };
      total += bytes.byteLength;
      if (total > LIMITS.maxBlobBytes) {
        return { reason: `Cumulative size of blobs exceeds ${LIMITS.maxBlobBytes} bytes.` };
      }
      value.blobs.push(asText(blob, bytes));
    }
  }

  if (doubles !== undefined) {
    if (!Array.isArray(doubles)) return { reason: "doubles must be an array" };
    if (doubles.length > LIMITS.maxDoubles) {
      return { reason: `Maximum of ${LIMITS.maxDoubles} doubles supported.` };
    }
    for (let i = 0; i < doubles.length; i++) {
      // JSON, the log and SQL have no NaN or Infinity (SPEC §2: finite numbers).
      if (typeof doubles[i] !== "number" || !Number.isFinite(doubles[i])) {
        return { reason: `doubles[${i}] must be a finite number` };
      }
    }
    value.doubles = [...doubles];
  }
  return { value };
}

// The bytes of a blob or index as Analytics Engine counts them, or null for a type it
// does not take.
function bytesOf(x) {
  if (typeof x === "string") return encoder.encode(x);
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  return null;
}

function asText(x, bytes) {
  return typeof x === "string" ? x : utf8.decode(bytes);
}

// One point, one request to POST /track/datapoints, through the same forward-or-queue
// path as the platform's /track/* requests: while the service is away, late or failing,
// the point waits in the queue (SPEC §6.1). A fresh Idempotency-Key makes any retry of
// it a duplicate at the service, not a second point.
async function deliverPoint(env, dataset, point) {
  const body = JSON.stringify({ dataset, points: [point] });
  const job = {
    route: "datapoints",
    body,
    contentType: "application/json",
    key: serviceKey(env),
    idempotencyKey: crypto.randomUUID(),
  };
  const outcome = await sendOrQueue(job, env, encoder.encode(body).byteLength);
  if (outcome.answer) {
    const { status } = outcome.answer;
    const text = await outcome.answer.text();
    if (status >= 300) {
      console.error(`writeDataPoint to ${dataset} refused by the service (${job.idempotencyKey}): ${status} ${text.slice(0, 500)}`);
    }
  } else if (outcome.failed) {
    console.error(`writeDataPoint to ${dataset} lost (${job.idempotencyKey}): ${outcome.failed}`);
  }
}

// The key the relay presents on its own behalf: the newest of the configured keys (a
// rotation lists the old key first).
function serviceKey(env) {
  const keys = String(env[SECRET_NAME] ?? "").split(",").map((k) => k.trim()).filter(Boolean);
  return keys.at(-1) ?? "";
}

// The Worker's own environments name the service; anywhere else (the default
// environment under `wrangler dev`), the service on loopback, as in development.
function serviceUrl(env) {
  return String(env.ANALYTICS_SERVICE_URL || FRONT.devServiceUrl);
}

// --- the platform's front ----------------------------------------------------

function isFront(env) {
  return Boolean(env.ANALYTICS_SERVICE_URL);
}

function setting(env, name, fallback) {
  const value = Number(env[name]);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

// POST /track/<route>: to the service as it is. Its 2xx and 4xx go back to the caller
// unchanged; when it cannot be reached, times out or answers 5xx, the request is queued
// and the caller gets 202 at once.
async function forward(request, env, route) {
  const body = await readBodyCapped(request, FRONT.maxBodyBytes);
  if (body === null) {
    return error(413, `Request body too large: more than ${FRONT.maxBodyBytes} bytes`);
  }
  const job = {
    route,
    ...queuedBody(body),
    contentType: request.headers.get("Content-Type") ?? "",
    key: request.headers.get(AUTH_HEADER) ?? "",
    // The platform's helper sends none: a fresh one makes every retry of this request,
    // by the queue or anyone, a duplicate at the service rather than a second event.
    idempotencyKey: request.headers.get(IDEMPOTENCY_HEADER) || crypto.randomUUID(),
  };
  const outcome = await sendOrQueue(job, env, body.byteLength);
  if (outcome.answer) {
    return new Response(outcome.answer.body, {
      status: outcome.answer.status,
      headers: passedHeaders(outcome.answer.headers, job.idempotencyKey),
    });
  }
  if (outcome.queued) {
    return json(202, { success: true, queued: true }, { [IDEMPOTENCY_HEADER]: job.idempotencyKey });
  }
  return error(503, outcome.failed);
}

// The one path from the relay to the service, for /track/* and for data points alike:
// {answer} when the service answered below 500 (the caller reads or cancels its body),
// {queued} when it is away, late or failing and the job waits in the queue, {failed}
// when even that was impossible.
async function sendOrQueue(job, env, bodyBytes) {
  let reason;
  try {
    const answer = await send(job, env);
    if (answer.status < 500) return { answer };
    reason = `the service answered ${answer.status}`;
    await answer.body?.cancel();
  } catch (e) {
    reason = e?.name === "TimeoutError"
      ? `no answer within ${setting(env, "ANALYTICS_FORWARD_TIMEOUT_MS", FRONT.forwardTimeoutMs)} ms`
      : `the service is unreachable: ${e?.message ?? e}`;
  }
  if (bodyBytes > FRONT.maxQueuedBytes) {  // 128 KB a message, its envelope included
    return { failed: `${reason}; the body (${bodyBytes} bytes) is too large to queue, retry later` };
  }
  try {
    await env.ANALYTICS_QUEUE.send(job);
  } catch (e) {
    return { failed: `${reason}, and queueing failed: ${e?.message ?? e}; retry later` };
  }
  console.warn(`queued /track/${job.route} (${job.idempotencyKey}): ${reason}`);
  return { queued: true, reason };
}

// A queued body is text (JSON is UTF-8): a byte array does not come back from every
// queue as one (wrangler dev's local queue returns a plain object). Bytes that are not
// UTF-8 go as base64, so that the service still sees them exactly and refuses them itself.
function queuedBody(bytes) {
  try {
    return { body: new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes) };
  } catch {
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return { bodyBase64: btoa(binary) };
  }
}

function bodyOf(job) {
  if (job.bodyBase64 === undefined) return job.body;
  return Uint8Array.from(atob(job.bodyBase64), (c) => c.charCodeAt(0));
}

function send(job, env) {
  const base = serviceUrl(env).replace(/\/+$/, "");
  const timeout = setting(env, "ANALYTICS_FORWARD_TIMEOUT_MS", FRONT.forwardTimeoutMs);
  return fetch(`${base}/track/${job.route}`, {
    method: "POST",
    headers: {
      "Content-Type": job.contentType,
      [AUTH_HEADER]: job.key,
      [IDEMPOTENCY_HEADER]: job.idempotencyKey,
    },
    body: bodyOf(job),
    signal: AbortSignal.timeout(timeout),
  });
}

function passedHeaders(headers, idempotencyKey) {
  const out = new Headers();
  for (const name of ["Content-Type", "Retry-After"]) {
    const value = headers.get(name);
    if (value !== null) out.set(name, value);
  }
  out.set(IDEMPOTENCY_HEADER, idempotencyKey);
  return out;
}

// One queued request: acknowledged only once the service has it (2xx, a duplicate
// included). A 4xx no retry can fix is logged and dead-lettered; anything else is retried
// with exponential backoff, until the queue's max_retries sends it to the dead-letter queue.
async function deliver(message, env) {
  const job = message.body;
  let status, reason;
  try {
    const answer = await send(job, env);
    status = answer.status;
    reason = (await answer.text()).slice(0, 500);
  } catch (e) {
    reason = e?.name === "TimeoutError" ? "timeout" : `unreachable: ${e?.message ?? e}`;
  }
  if (status >= 200 && status < 300) {
    message.ack();
    return;
  }
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    console.error(`dead-lettered /track/${job.route} (${job.idempotencyKey}): ${status} ${reason}`);
    try {
      await env.ANALYTICS_DEAD_LETTER.send({ ...job, status, reason, failedAt: new Date().toISOString() });
    } catch (e) {
      // Not acknowledged: the queue tries it again, and dead-letters it after max_retries.
      message.retry({ delaySeconds: backoff(env, message.attempts) });
      return;
    }
    message.ack();
    return;
  }
  message.retry({ delaySeconds: backoff(env, message.attempts) });
}

// attempts counts from 1; the delay doubles from the base up to the cap.
function backoff(env, attempts) {
  const base = setting(env, "ANALYTICS_RETRY_BASE_SECONDS", FRONT.retryBaseSeconds);
  const cap = setting(env, "ANALYTICS_RETRY_MAX_SECONDS", FRONT.retryMaxSeconds);
  return Math.round(Math.min(cap, base * 2 ** Math.max(0, attempts - 1)));
}

// --- /ingest ------------------------------------------------------------------

async function ingest(request, env) {
  const raw = await readBodyCapped(request, LIMITS.maxBodyBytes);
  if (raw === null) {
    return error(413, `Request body too large: more than ${LIMITS.maxBodyBytes} bytes`);
  }

  let body;
  try {
    // fatal: invalid UTF-8 is a malformed request, not something to repair.
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    return error(400, `Malformed JSON: ${e.message}`);
  }

  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return invalid("Body must be a JSON object", []);
  }
  const { batchId = null, points } = body;
  if (batchId !== null && typeof batchId !== "string") {
    return invalid("batchId must be a string", []);
  }
  if (!Array.isArray(points)) {
    return invalid("points must be an array", []);
  }
  if (points.length > LIMITS.maxPoints) {
    return invalid(`Too many points: ${points.length} (at most ${LIMITS.maxPoints} per request)`, [
      { index: LIMITS.maxPoints, reason: `over the limit of ${LIMITS.maxPoints} points per request` },
    ]);
  }

  const details = [];
  const clean = points.map((point, index) => {
    const { reasons, value } = checkPoint(point);
    for (const reason of reasons) details.push({ index, reason });
    return value;
  });
  if (details.length > 0) {
    const bad = new Set(details.map((d) => d.index)).size;
    return invalid(`${bad} of ${points.length} points are invalid; nothing was written`, details);
  }

  for (let i = 0; i < clean.length; i++) {
    try {
      env.ANALYTICS_ENGINE.writeDataPoint(clean[i]);
    } catch (e) {
      // Points before i are already written and cannot be taken back: say how
      // many, so the caller knows a retry will duplicate them (at-least-once).
      return json(500, {
        success: false,
        error: `writeDataPoint threw at point ${i}: ${e?.message ?? e}; ${i} point(s) before it were written`,
        written: i,
        batchId,
      });
    }
  }
  return json(200, { success: true, written: clean.length, batchId });
}

// Returns every reason the point breaks a limit, and a copy holding only the
// fields Analytics Engine knows (so nothing unexpected reaches the binding).
function checkPoint(point) {
  const reasons = [];
  if (point === null || typeof point !== "object" || Array.isArray(point)) {
    return { reasons: ["point must be an object"], value: null };
  }
  for (const key of Object.keys(point)) {
    if (!POINT_FIELDS.has(key)) {
      reasons.push(`unknown field "${key}" (allowed: blobs, doubles, indexes)`);
    }
  }

  const value = {};
  const { blobs, doubles, indexes } = point;

  if (blobs !== undefined) {
    if (!Array.isArray(blobs)) {
      reasons.push("blobs must be an array");
    } else {
      if (blobs.length > LIMITS.maxBlobs) {
        reasons.push(`too many blobs: ${blobs.length} (at most ${LIMITS.maxBlobs})`);
      }
      let bytes = 0;
      blobs.forEach((b, j) => {
        if (typeof b === "string") bytes += utf8Length(b);
        else if (b !== null) reasons.push(`blobs[${j}] must be a string or null`);
      });
      if (bytes > LIMITS.maxBlobBytes) {
        reasons.push(`blobs total ${bytes} bytes UTF-8 (at most ${LIMITS.maxBlobBytes})`);
      }
      value.blobs = blobs;
    }
  }

  if (doubles !== undefined) {
    if (!Array.isArray(doubles)) {
      reasons.push("doubles must be an array");
    } else {
      if (doubles.length > LIMITS.maxDoubles) {
        reasons.push(`too many doubles: ${doubles.length} (at most ${LIMITS.maxDoubles})`);
      }
      doubles.forEach((d, j) => {
        // JSON cannot carry NaN/Infinity, but a string or null can sneak in.
        if (typeof d !== "number" || !Number.isFinite(d)) {
          reasons.push(`doubles[${j}] must be a finite number`);
        }
      });
      value.doubles = doubles;
    }
  }

  if (indexes !== undefined) {
    if (!Array.isArray(indexes)) {
      reasons.push("indexes must be an array");
    } else {
      if (indexes.length > LIMITS.maxIndexes) {
        reasons.push(`too many indexes: ${indexes.length} (at most ${LIMITS.maxIndexes})`);
      }
      indexes.forEach((x, j) => {
        if (typeof x === "string") {
          const n = utf8Length(x);
          if (n > LIMITS.maxIndexBytes) {
            reasons.push(`indexes[${j}] is ${n} bytes UTF-8 (at most ${LIMITS.maxIndexBytes})`);
          }
        } else if (x !== null) {
          reasons.push(`indexes[${j}] must be a string or null`);
        }
      });
      value.indexes = indexes;
    }
  }

  return { reasons, value };
}

// --- auth -----------------------------------------------------------------

// The secret may hold several comma-separated keys so a key can be rotated
// without downtime: add the new one, move callers over, drop the old one.
async function checkAuth(request, env) {
  const keys = String(env[SECRET_NAME] ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.length === 0) {
    return error(
      503,
      `${SECRET_NAME} is not set: run \`npx wrangler secret put ${SECRET_NAME}\` (locally: put it in .dev.vars)`,
    );
  }
  const given = request.headers.get(AUTH_HEADER);
  if (!given || !(await matchesAny(given, keys))) {
    return error(401, "Unauthorized");
  }
  return null;
}

// Constant-time: hash both sides so lengths are equal (timingSafeEqual needs
// that, and comparing raw lengths would leak them), and check every key
// without stopping at the first match.
async function matchesAny(given, keys) {
  const digest = async (s) => crypto.subtle.digest("SHA-256", encoder.encode(s));
  const givenHash = await digest(given);
  let ok = false;
  for (const key of keys) {
    ok = crypto.subtle.timingSafeEqual(givenHash, await digest(key)) || ok;
  }
  return ok;
}

// --- helpers --------------------------------------------------------------

function utf8Length(s) {
  return encoder.encode(s).byteLength;
}

// Reads the body but stops as soon as it passes `limit` bytes, so a huge
// upload is refused without being buffered. Returns null when too big.
async function readBodyCapped(request, limit) {
  const declared = Number(request.headers.get("Content-Length"));
  if (Number.isFinite(declared) && declared > limit) return null;
  if (!request.body) return new Uint8Array(0);

  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function json(status, body, headers = {}) {
  return Response.json(body, { status, headers });
}

function error(status, message, headers) {
  return json(status, { success: false, error: message }, headers);
}

function invalid(message, details) {
  return json(400, { success: false, error: message, details });
}

function methodNotAllowed(allow) {
  return error(405, `Method not allowed; use ${allow}`, { Allow: allow });
}
