// wrangler, the dev dependency behind `npm run dev` and `npm run deploy`, reads
// wrangler.jsonc as Cloudflare would: a dry-run deploy (offline, nothing is
// uploaded) of each environment names the dataset its binding writes to.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function dryRunDeploy(...args) {
  const outdir = mkdtempSync(path.join(tmpdir(), "relay-dry-run-"));
  return execFileSync(
    path.join(ROOT, "node_modules", ".bin", "wrangler"),
    ["deploy", "--dry-run", "--outdir", outdir, ...args],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: {
        ...process.env,
        // wrangler needs Node 22: the one this test runs on.
        PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`,
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
      },
      timeout: 120_000,
    },
  );
}

test("the default environment binds the profile layout's dataset", () => {
  assert.match(dryRunDeploy(), /env\.ANALYTICS_ENGINE \(hoox_telemetry\)/);
});

test("--env hoox binds the platform's dataset hoox-analytics", () => {
  assert.match(dryRunDeploy("--env", "hoox"), /env\.ANALYTICS_ENGINE \(hoox-analytics\)/);
});

test("--env platform is analytics-worker with its queue, dead-letter queue and service URL", () => {
  const out = dryRunDeploy("--env", "platform");
  assert.match(out, /env\.ANALYTICS_ENGINE \(hoox-analytics\)/);
  assert.match(out, /env\.ANALYTICS_QUEUE \(analytics-worker-deliveries\)\s+Queue/);
  assert.match(out, /env\.ANALYTICS_DEAD_LETTER \(analytics-worker-dead-letters\)\s+Queue/);
  assert.match(out, /env\.ANALYTICS_SERVICE_URL \("http:\/\/127\.0\.0\.1:8787"\)/);
  assert.match(out, /env\.ANALYTICS_FORWARD_TIMEOUT_MS \("2000"\)/);
});

test("--env dev is analytics-worker too, with its queue, for any Worker's wrangler dev", () => {
  const out = dryRunDeploy("--env", "dev");
  assert.match(out, /env\.ANALYTICS_QUEUE \(analytics-worker-deliveries\)\s+Queue/);
  assert.match(out, /env\.ANALYTICS_SERVICE_URL \("http:\/\/127\.0\.0\.1:8787"\)/);
});

test("the example Worker binds its dataset in production and the relay's entrypoint in dev", () => {
  const config = ["-c", path.join(ROOT, "examples/events/wrangler.jsonc")];
  assert.match(dryRunDeploy(...config), /env\.EVENTS \(my_events\)\s+Analytics Engine Dataset/);
  const dev = dryRunDeploy(...config, "--env", "dev");
  assert.match(dev, /env\.EVENTS \(analytics-worker#AnalyticsEngineDataset\)\s+Worker/);
  assert.doesNotMatch(dev, /Analytics Engine Dataset/);
});
