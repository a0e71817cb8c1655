// D1 for the local host: Miniflare's own D1 (the one `wrangler dev` uses, running inside workerd), reached through
// a tiny service worker over plain HTTP, one request per statement and one per `batch()` (one transaction, as on
// Cloudflare). The worker sees the binding under the runtime's class names (`D1Database`, `D1PreparedStatement`):
// the workers SDK recognises bindings by class name (workers/rpc.py `_EnvWrapper`) to convert their results.
//
// Why not `mf.getD1Database()`: Miniflare's Node proxy costs a round trip per statement and, under load, breaks for
// good ("fetch failed", then "poisoned stub"). A plain keep-alive HTTP request per call has no state to poison: a
// failed call fails alone and the next one opens a fresh connection.

import http from "node:http";

import { Miniflare } from "miniflare";

// Runs inside workerd: executes what the host sends on the named binding and answers JSON.
const CALL_TIMEOUT_MS = 30_000; // D1's own limit for one query is 30 s; a call never hangs past it

const SERVICE = `
const decode = (value) =>
  value !== null && typeof value === "object" && "$bytes" in value
    ? Uint8Array.from(atob(value.$bytes), (c) => c.charCodeAt(0))
    : value;
export default {
  async fetch(request, env) {
    const { binding, mode, column, statements } = await request.json();
    const db = env[binding];
    if (!db) return Response.json({ error: "no D1 binding " + binding }, { status: 400 });
    try {
      if (mode === "exec") return Response.json({ result: await db.exec(statements[0].sql) });
      const prepared = statements.map(({ sql, params }) => db.prepare(sql).bind(...params.map(decode)));
      let result;
      if (mode === "batch") result = await db.batch(prepared);
      else if (mode === "first") result = await (column === undefined ? prepared[0].first() : prepared[0].first(column));
      else if (mode === "raw") result = await prepared[0].raw();
      else result = await prepared[0][mode === "run" ? "run" : "all"]();
      return Response.json({ result });
    } catch (error) {
      return Response.json({ error: String((error && error.message) || error) }, { status: 500 });
    }
  },
};
`;

function encodeParam(value) {
  if (typeof value === "bigint") return Number(value);
  if (value instanceof ArrayBuffer) value = new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  return value === undefined ? null : value;
}

class D1Service {
  constructor(url) {
    this.url = new URL(url);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  call(body) {
    const data = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = http.request(
        this.url,
        {
          method: "POST",
          agent: this.agent,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
        },
        (response) => {
          const chunks = [];
          response.on("data", (chunk) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => {
            let answer;
            try {
              answer = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              reject(new Error(`D1 service answered HTTP ${response.statusCode} without JSON`));
              return;
            }
            if (answer.error !== undefined) reject(new Error(answer.error));
            else resolve(answer.result);
          });
        },
      );
      request.on("error", (error) => reject(new Error(`D1 service unreachable: ${error.message}`)));
      request.setTimeout(CALL_TIMEOUT_MS, () => request.destroy(new Error("timed out")));
      request.end(data);
    });
  }
}

class D1PreparedStatement {
  constructor(database, sql, params = []) {
    this.database = database;
    this.sql = sql;
    this.params = params;
  }
  bind(...values) {
    return new D1PreparedStatement(this.database, this.sql, values.map(encodeParam));
  }
  first(column) {
    return this.database.run1("first", this, column);
  }
  all() {
    return this.database.run1("all", this);
  }
  run() {
    return this.database.run1("run", this);
  }
  raw() {
    return this.database.run1("raw", this);
  }
  toJSON() {
    return { sql: this.sql, params: this.params };
  }
}

class D1Database {
  constructor(service, binding) {
    this.service = service;
    this.binding = binding;
  }
  prepare(sql) {
    return new D1PreparedStatement(this, sql);
  }
  run1(mode, statement, column) {
    return this.service.call({ binding: this.binding, mode, column, statements: [statement] });
  }
  batch(statements) {
    return this.service.call({ binding: this.binding, mode: "batch", statements: Array.from(statements) });
  }
  exec(sql) {
    return this.service.call({ binding: this.binding, mode: "exec", statements: [{ sql, params: [] }] });
  }
}

// Miniflare running the service with `bindings` persisted under `persist`; `url` is what connectD1 takes.
export async function startD1(bindings, persist) {
  const mf = new Miniflare({ modules: true, script: SERVICE, d1Databases: bindings, d1Persist: persist });
  const url = await mf.ready;
  return { url: url.toString(), dispose: () => mf.dispose() };
}

// The bindings the worker's env carries, each a D1Database over the service at `url`.
export function connectD1(url, bindings) {
  const service = new D1Service(url);
  return Object.fromEntries(bindings.map((binding) => [binding, new D1Database(service, binding)]));
}
