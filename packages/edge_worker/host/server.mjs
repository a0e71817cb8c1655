#!/usr/bin/env node
// The local edge host: runs the worker's own Python (src/entry.py) under the npm `pyodide` package with the real
// `workers-runtime-sdk`, its D1 bindings served by Miniflare's D1 (host/d1.mjs), all offline. What differs from
// workerd is written down in docs/edge-host.md; keep this file small and keep that page true.
//
//   node packages/edge_worker/host/server.mjs --port 8787 --persist var/edge [--instances 2] [--test-scheduled]
//
// Flags also come from the environment: SMSFAILOVER_EDGE_PORT, SMSFAILOVER_EDGE_HOST, SMSFAILOVER_EDGE_PERSIST,
// SMSFAILOVER_EDGE_INSTANCES. `--port 0` picks a free port; the "ready" line on stdout carries the real URL.
// With `--instances N` (N > 1) the primary process runs D1 and N worker processes each run their own Pyodide on
// the one port, as workerd runs several isolates: module state (the rate limiter) is per instance, as per isolate.

import cluster from "node:cluster";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { loadPyodide } from "pyodide";

import { connectD1, startD1 } from "./d1.mjs";
import { applyMigrations } from "./migrations.mjs";

const HOST_DIR = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE_DIR = path.resolve(HOST_DIR, "..");
const REPO_ROOT = path.resolve(PACKAGE_DIR, "..", "..");
const MAX_BODY_BYTES = 1024 * 1024; // the app answers 413 above 64 KiB; this only bounds what the host buffers

// The vars and secrets the worker reads (wrangler.toml names the same ones); passed through from process.env.
const ENV_NAMES = [
  "SMSFAILOVER_JWT_SECRET",
  "SMSFAILOVER_SERVICE_KEY",
  "TWILIO_ACCOUNT_SID",
  "TWILIO_AUTH_TOKEN",
  "SMSFAILOVER_PROVIDER_URL",
  "SMSFAILOVER_FROM",
  "SMSFAILOVER_MESSAGING_SERVICE_SID",
  "SMSFAILOVER_ENV",
  "SMSFAILOVER_RATE_LIMIT",
  "SMSFAILOVER_LEASE_S",
  "SMSFAILOVER_PROVIDER_TIMEOUT_S",
  "SMSFAILOVER_RETENTION_S",
  "SMSFAILOVER_STATUS_CALLBACK_URL",
  "SMSFAILOVER_D1_SHARDS",
];

// The D1 bindings: shard 0 is DB; SMSFAILOVER_D1_SHARDS names them all, in shard order (wrangler.toml likewise).
function shardBindings() {
  const names = (process.env.SMSFAILOVER_D1_SHARDS ?? "DB").split(",").map((name) => name.trim()).filter(Boolean);
  return names.length ? names : ["DB"];
}

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: process.env.SMSFAILOVER_EDGE_PORT ?? "8787" },
      host: { type: "string", default: process.env.SMSFAILOVER_EDGE_HOST ?? "127.0.0.1" },
      persist: { type: "string", default: process.env.SMSFAILOVER_EDGE_PERSIST ?? "var/edge" },
      instances: { type: "string", default: process.env.SMSFAILOVER_EDGE_INSTANCES ?? "1" },
      "python-modules": { type: "string", default: path.join(REPO_ROOT, "python_modules") },
      "test-scheduled": { type: "boolean", default: process.env.SMSFAILOVER_EDGE_TEST_SCHEDULED === "1" },
    },
  });
  return values;
}

function workerVars() {
  const vars = {};
  for (const name of ENV_NAMES) {
    if (process.env[name] !== undefined && process.env[name] !== "") vars[name] = process.env[name];
  }
  const development = (vars.SMSFAILOVER_ENV ?? "production") === "development";
  const devSecret = path.resolve("var", "dev-secret");
  if (development && fs.existsSync(devSecret)) {
    const secret = fs.readFileSync(devSecret, "utf8").trim();
    vars.SMSFAILOVER_JWT_SECRET ??= secret;
    // the same derivation as the origin's (smsfailover.core.config.dev_derived_key)
    vars.SMSFAILOVER_SERVICE_KEY ??= crypto.createHmac("sha256", secret).update("service-key").digest("hex").slice(0, 32);
  }
  for (const name of ["SMSFAILOVER_JWT_SECRET", "SMSFAILOVER_SERVICE_KEY"]) {
    if (!vars[name] && !development) {
      throw new Error(`${name} is not set (outside SMSFAILOVER_ENV=development the edge needs it)`);
    }
  }
  return vars;
}

// The workers SDK as uv installed it from PyPI (workers-runtime-sdk, the edge package's dev dependency).
function findWorkersSdk() {
  const fromEnv = process.env.SMSFAILOVER_WORKERS_SDK;
  if (fromEnv) return fromEnv;
  const lib = path.join(REPO_ROOT, ".venv", "lib");
  for (const python of fs.existsSync(lib) ? fs.readdirSync(lib) : []) {
    const candidate = path.join(lib, python, "site-packages", "workers");
    if (fs.existsSync(path.join(candidate, "entrypoints.py"))) return candidate;
  }
  throw new Error("workers-runtime-sdk not found: run `uv sync --all-packages` (or set SMSFAILOVER_WORKERS_SDK)");
}

async function startPython(pythonModules) {
  if (!fs.existsSync(path.join(pythonModules, "smsfailover", "core"))) {
    throw new Error(`${pythonModules} has no smsfailover/core: run \`make vendor\` first`);
  }
  const started = performance.now();
  const pyodide = await loadPyodide({ stdout: (line) => console.log(line), stderr: (line) => console.error(line) });
  const loadedMs = performance.now() - started;
  for (const dir of ["/bundle", "/python_modules", "/sdk/workers", "/stubs"]) pyodide.FS.mkdirTree(dir);
  pyodide.mountNodeFS("/bundle", path.join(PACKAGE_DIR, "src"));
  pyodide.mountNodeFS("/python_modules", pythonModules);
  pyodide.mountNodeFS("/sdk/workers", findWorkersSdk());
  pyodide.mountNodeFS("/stubs", path.join(HOST_DIR, "stubs"));
  const importStarted = performance.now();
  // The order matches workerd's: the bundle, then the vendored python_modules, then the runtime's own SDK.
  const py = await pyodide.runPythonAsync(`
import sys
sys.path[:0] = ["/bundle", "/python_modules", "/sdk", "/stubs"]
import entry, workers

def make_request(js_request):
    return workers.Request(js_request)

def response_object(response):
    return getattr(response, "js_object", response)

def install_workers_module(module):
    import _pyodide_entrypoint_helper
    _pyodide_entrypoint_helper.cloudflareWorkersModule = module

{"Default": entry.Default, "make_request": make_request, "response_object": response_object,
 "install_workers_module": install_workers_module}
`);
  const timings = { pyodide_ms: loadedMs, import_ms: performance.now() - importStarted };
  return { pyodide, py, timings };
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// As workerd: what waitUntil is given becomes a promise at once (the worker hands over a proxy of a Python task, a
// thenable destroyed once the task is done), and a rejection is logged, never dropped.
function makeCtx() {
  const pending = [];
  const waitUntil = (work) => {
    const rejected = (err) => console.error(`edge host: a waitUntil promise rejected: ${err?.message ?? err}`);
    pending.push(Promise.resolve(work).catch(rejected));
  };
  return {
    ctx: { waitUntil, passThroughOnException: () => {} },
    settle: () => Promise.allSettled(pending),
  };
}

// The primary: D1 (Miniflare) and its migrations, then the HTTP server in this process or in N worker processes.
async function main() {
  const opts = options();
  workerVars(); // refuse to start without a secret before anything else starts
  const persist = path.resolve(opts.persist);
  fs.mkdirSync(persist, { recursive: true });
  const bindings = shardBindings();
  const d1 = await startD1(bindings, persist);
  const databases = connectD1(d1.url, bindings);
  for (const binding of bindings) {
    const applied = await applyMigrations(databases[binding], path.join(PACKAGE_DIR, "migrations"));
    if (applied.length) console.log(`applied D1 migrations to ${binding}: ${applied.join(", ")}`);
  }
  const instances = Math.max(1, Number.parseInt(opts.instances, 10) || 1);
  let stopWorkers = async () => {};
  let ready;
  if (instances === 1) {
    const served = await serve(opts, d1.url, bindings);
    ready = served.ready;
    stopWorkers = served.close;
  } else {
    // An instance that dies after start takes the host down (whoever runs it restarts it): a primary holding the
    // port with no instance behind it would accept connections and never answer.
    const die = (why) => {
      console.error(`edge host: ${why}; stopping`);
      void d1.dispose().finally(() => process.exit(1));
    };
    ({ ready, stopWorkers } = await forkInstances(instances, d1.url, die));
  }
  console.log(ready);

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`edge host stopping (${signal})`);
    const deadline = setTimeout(() => process.exit(1), 5000); // never hang on the way out
    await stopWorkers();
    await d1.dispose();
    clearTimeout(deadline);
    process.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"]) {
    // Miniflare's own exit hook would exit(143) before this async stop ran; stop() disposes Miniflare itself.
    process.removeAllListeners(signal);
    process.on(signal, () => void stop(signal));
  }
}

// N worker processes on the one port (cluster hands connections round-robin); ready once every one answered.
async function forkInstances(instances, d1Url, die) {
  const workers = [];
  const lines = [];
  for (let i = 0; i < instances; i++) {
    const worker = cluster.fork({ SMSFAILOVER_EDGE_D1_URL: d1Url, SMSFAILOVER_EDGE_INSTANCE: String(i) });
    workers.push(worker);
    lines.push(
      new Promise((resolve, reject) => {
        worker.on("message", (message) => message?.ready && resolve(message.ready));
        worker.on("exit", (code) => reject(new Error(`edge instance ${i} exited (${code}) before it was ready`)));
      }),
    );
  }
  let stoppingWorkers = false;
  cluster.on("exit", (worker, code) => {
    if (!stoppingWorkers) die(`instance ${worker.id} exited (${code})`);
  });
  const ready = `${(await Promise.all(lines))[0]} with ${instances} instances`;
  const stopWorkers = async () => {
    stoppingWorkers = true;
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise((resolve) => {
            if (worker.isDead()) return resolve();
            worker.once("exit", resolve);
            worker.kill("SIGTERM");
          }),
      ),
    );
  };
  return { ready, stopWorkers };
}

// One instance: Pyodide, the worker's Python, and the HTTP server. Returns the ready line and how to close it.
async function serve(opts, d1Url, bindings) {
  const vars = workerVars();
  const env = { ...vars, ...connectD1(d1Url, bindings) };
  const { py, timings } = await startPython(path.resolve(opts["python-modules"]));
  const Default = py.get("Default");
  const makeRequest = py.get("make_request");
  const responseObject = py.get("response_object");
  // What `from workers import env` / `import_from_javascript("cloudflare:workers")` see under workerd.
  py.get("install_workers_module")({ env, waitUntil: () => {} });

  async function callFetch(request) {
    const { ctx, settle } = makeCtx();
    const worker = Default(ctx, env);
    try {
      const wrapped = makeRequest(request);
      const result = await worker.fetch(wrapped);
      const response = responseObject(result);
      wrapped.destroy?.();
      result?.destroy?.();
      return response;
    } finally {
      worker.destroy();
      settle();
    }
  }

  async function callScheduled(cron) {
    const { ctx, settle } = makeCtx();
    const worker = Default(ctx, env);
    try {
      await worker.scheduled({ cron, scheduledTime: Date.now(), noRetry: () => {} }, env, ctx);
    } finally {
      worker.destroy();
      await settle();
    }
  }

  const server = http.createServer(async (req, res) => {
    const started = performance.now();
    try {
      const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
      if (opts["test-scheduled"] && url.pathname === "/__scheduled") {
        // wrangler dev --test-scheduled exposes the same path
        await callScheduled(url.searchParams.get("cron") ?? "*/15 * * * *");
        res.writeHead(200, { "content-type": "text/plain" }).end("Ran scheduled event");
        return;
      }
      const body = req.method === "GET" || req.method === "HEAD" ? null : await readBody(req);
      if (body === null && req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(413, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "payload_too_large", message: "The request body is too large." } }));
        return;
      }
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
      }
      const request = new Request(url, { method: req.method, headers, body });
      const response = await callFetch(request);
      const out = {};
      response.headers.forEach((value, name) => (out[name] = value));
      res.writeHead(response.status, out);
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch (err) {
      // Never a stack trace to the client; the host's own log keeps it.
      console.error("edge host: unhandled error", err);
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "internal_error", message: "The edge failed to handle the request." } }));
    } finally {
      if (process.env.SMSFAILOVER_EDGE_TIMING === "1") {
        console.log(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - started).toFixed(1)} ms`);
      }
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise((resolve) => server.listen(Number(opts.port), opts.host, resolve));
  const { port } = server.address();
  const url = `http://${opts.host}:${port}`;
  const health = await callFetch(new Request(`${url}/v1/health`));
  if (health.status !== 200) throw new Error(`the worker's health check answered ${health.status}`);
  const ready = `edge host ready on ${url} (pyodide ${timings.pyodide_ms.toFixed(0)} ms, imports ${timings.import_ms.toFixed(0)} ms)`;
  const close = async () => {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  };
  return { ready, close };
}

// A forked instance: serve, tell the primary, stop on SIGTERM.
async function instance() {
  const { ready, close } = await serve(options(), process.env.SMSFAILOVER_EDGE_D1_URL, shardBindings());
  process.send({ ready });
  process.on("SIGTERM", () => void close().then(() => process.exit(0)));
  process.on("SIGINT", () => {}); // Ctrl-C reaches the whole group: the primary stops the instances
}

(cluster.isPrimary ? main() : instance()).catch((err) => {
  console.error(`edge host failed to start: ${err?.message ?? err}`);
  process.exit(1);
});
