// Miniflare hands Node a D1 proxy whose JavaScript class name is not `D1Database`. The workers SDK recognises
// bindings by class name (workers/rpc.py `_EnvWrapper`) to convert their results to Python as it does under
// workerd, so the host presents the proxy under the runtime's own class names. Behaviour is Miniflare's.
//
// Under heavy load Miniflare's proxy can break for good ("fetch failed", then "poisoned stub"). The failing call
// still fails (retrying a write could apply it twice), but the next calls get a fresh proxy, so the host heals
// instead of answering 500 until it is restarted. workerd's real binding has no such state.

const BROKEN_PROXY = /poisoned|fetch failed|stub/i;

class D1PreparedStatement {
  constructor(statement, owner) {
    this.statement = statement;
    this.owner = owner;
  }
  bind(...values) {
    return new D1PreparedStatement(this.statement.bind(...values), this.owner);
  }
  first(column) {
    return this.owner.watch(column === undefined ? this.statement.first() : this.statement.first(column));
  }
  all() {
    return this.owner.watch(this.statement.all());
  }
  run() {
    return this.owner.watch(this.statement.run());
  }
  raw(options) {
    return this.owner.watch(this.statement.raw(options));
  }
}

class D1Database {
  constructor(db, reacquire) {
    this.db = db;
    this.reacquire = reacquire;
    this.renewing = null;
  }
  prepare(sql) {
    return new D1PreparedStatement(this.db.prepare(sql), this);
  }
  batch(statements) {
    const raw = Array.from(statements, (s) => (s instanceof D1PreparedStatement ? s.statement : s));
    return this.watch(this.db.batch(raw));
  }
  exec(sql) {
    return this.watch(this.db.exec(sql));
  }
  async watch(promise) {
    try {
      return await promise;
    } catch (error) {
      if (this.reacquire && BROKEN_PROXY.test(String(error && error.message)) && !this.renewing) {
        console.error(`edge host: D1 proxy broke (${error.message}); taking a fresh one`);
        this.renewing = this.reacquire()
          .then((db) => {
            this.db = db;
          })
          .catch((e) => console.error(`edge host: could not renew the D1 proxy: ${e.message}`))
          .finally(() => {
            this.renewing = null;
          });
      }
      throw error;
    }
  }
}

export function wrapD1(db, reacquire = null) {
  return new D1Database(db, reacquire);
}
