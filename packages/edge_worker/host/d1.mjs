// Miniflare hands Node a D1 proxy whose JavaScript class name is not `D1Database`. The workers SDK recognises
// bindings by class name (workers/rpc.py `_EnvWrapper`) to convert their results to Python as it does under
// workerd, so the host presents the proxy under the runtime's own class names. Behaviour is Miniflare's.

class D1PreparedStatement {
  constructor(statement) {
    this.statement = statement;
  }
  bind(...values) {
    return new D1PreparedStatement(this.statement.bind(...values));
  }
  first(column) {
    return column === undefined ? this.statement.first() : this.statement.first(column);
  }
  all() {
    return this.statement.all();
  }
  run() {
    return this.statement.run();
  }
  raw(options) {
    return this.statement.raw(options);
  }
}

class D1Database {
  constructor(db) {
    this.db = db;
  }
  prepare(sql) {
    return new D1PreparedStatement(this.db.prepare(sql));
  }
  batch(statements) {
    return this.db.batch(Array.from(statements, (s) => (s instanceof D1PreparedStatement ? s.statement : s)));
  }
  exec(sql) {
    return this.db.exec(sql);
  }
}

export function wrapD1(db) {
  return new D1Database(db);
}
