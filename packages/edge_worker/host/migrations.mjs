// Applies packages/edge_worker/migrations/*.sql in name order, once each, recording them in the same
// `d1_migrations` table that `wrangler d1 migrations apply` keeps.

import fs from "node:fs";
import path from "node:path";

const TRACKING = `CREATE TABLE IF NOT EXISTS d1_migrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT UNIQUE,
  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
)`;

// Statements end with `;` at the end of a line, except inside a trigger's BEGIN ... END; `--` comments are
// dropped (the migrations are plain DDL, no string holds `--` or `;`).
export function splitStatements(sql) {
  const statements = [];
  let current = [];
  let inTrigger = false;
  for (const raw of sql.split("\n")) {
    const line = raw.replace(/--.*$/, "").trimEnd();
    if (!line.trim()) continue;
    current.push(line);
    if (/^\s*CREATE\s+TRIGGER\b/i.test(current[0])) inTrigger = true;
    const ends = inTrigger ? /^\s*END\s*;$/i.test(line) : line.endsWith(";");
    if (ends) {
      statements.push(current.join("\n").replace(/;\s*$/, ""));
      current = [];
      inTrigger = false;
    }
  }
  if (current.length) statements.push(current.join("\n"));
  return statements;
}

export async function applyMigrations(db, dir) {
  await db.prepare(TRACKING).run();
  const done = new Set((await db.prepare("SELECT name FROM d1_migrations").all()).results.map((r) => r.name));
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  const applied = [];
  for (const file of files) {
    if (done.has(file)) continue;
    const statements = splitStatements(fs.readFileSync(path.join(dir, file), "utf8")).map((s) => db.prepare(s));
    statements.push(db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(file));
    await db.batch(statements); // one transaction per file, as wrangler does
    applied.push(file);
  }
  return applied;
}
