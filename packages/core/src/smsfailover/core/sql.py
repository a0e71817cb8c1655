"""The ledger and message tables, in SQL written once (SQLite dialect, `?` placeholders).

SQLite, Cloudflare D1 and (after the origin rewrites `?` to `$n` and INTEGER to BIGINT) PostgreSQL all run these
statements. Each database supplies only a SqlExecutor. Times are epoch milliseconds.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from smsfailover.core.ids import parse_rfc3339, rfc3339
from smsfailover.core.ledger import CALL_BEGAN_UNRECORDED, LedgerRecord, LedgerState, is_not_sent, ledger_body
from smsfailover.core.numbers import whole_number

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_ledger (
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    message_id TEXT NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    message TEXT,
    PRIMARY KEY (workspace_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_ledger_created ON idempotency_ledger (created_at);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    to_number TEXT NOT NULL,
    content TEXT NOT NULL,
    contact_id TEXT,
    media_urls TEXT NOT NULL,
    status TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    ledger TEXT NOT NULL,
    provider_message_id TEXT,
    segments INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    latency_ms REAL,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ws_key ON messages (workspace_id, idempotency_key);
CREATE INDEX IF NOT EXISTS messages_ws_created ON messages (workspace_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_seq ON messages (seq);
CREATE INDEX IF NOT EXISTS messages_provider ON messages (provider_message_id);
"""


# Added to SCHEMA's tables since (each endpoint's migrations run these once: origin 7, D1 0005). A claim written
# before the column existed reads -1 ("not recorded"), so it is never taken for one whose call never began.
CALL_BEGAN_UPGRADE = """
ALTER TABLE idempotency_ledger ADD COLUMN call_began_at INTEGER;
UPDATE idempotency_ledger SET call_began_at = -1 WHERE state = 'claimed';
CREATE INDEX IF NOT EXISTS idempotency_ledger_open ON idempotency_ledger (state, lease_expires_at)
"""


def schema_statements(script: str = SCHEMA) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def full_schema_statements() -> list[str]:
    """SCHEMA and every upgrade since: a database made from scratch (tests, tools)."""
    return schema_statements(SCHEMA) + schema_statements(CALL_BEGAN_UPGRADE)


class SqlExecutor(Protocol):
    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]: ...

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...


Statement = tuple[str, Sequence[object]]


class BatchExecutor(SqlExecutor, Protocol):
    async def batch(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        """Run the statements in order as one transaction (D1's `batch()`); each statement's rows."""
        ...


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _s(ms: object) -> float:
    return float(ms) / 1000.0 if isinstance(ms, int | float) else 0.0


# ---- the ledger -------------------------------------------------------------------------------------------------


def claim_statement(row_source: str) -> str:
    """The claim: insert the row `row_source` yields (a VALUES or a SELECT of claim_params' values), or take over a
    RELEASED row with the same key; RETURNING says whether it was taken."""
    return f"""
INSERT INTO idempotency_ledger (workspace_id, idempotency_key, fingerprint, state, endpoint, message_id,
                                lease_expires_at, created_at, updated_at, message)
{row_source}
ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET
    fingerprint = excluded.fingerprint, state = 'claimed', endpoint = excluded.endpoint,
    message_id = excluded.message_id, lease_expires_at = excluded.lease_expires_at,
    created_at = excluded.created_at, updated_at = excluded.updated_at, message = NULL, call_began_at = NULL
WHERE idempotency_ledger.state = 'released'
RETURNING idempotency_key
"""


_CLAIM = claim_statement("VALUES (?, ?, ?, 'claimed', ?, ?, ?, ?, ?, NULL)")
_GET = "SELECT * FROM idempotency_ledger WHERE workspace_id = ? AND idempotency_key = ?"
_COMPLETE = """
UPDATE idempotency_ledger SET state = 'completed', message = ?, updated_at = ?
WHERE workspace_id = ? AND idempotency_key = ? AND state = 'claimed' AND message_id = ?
"""
# LedgerStore.complete of a `not_sent` message (ledger.is_not_sent): only while no call-began mark exists, checked in
# the write itself, so a mark committed after the resolution read the claim wins.
_COMPLETE_NOT_SENT = _COMPLETE.rstrip() + " AND call_began_at IS NULL\n"
_RELEASE = """
UPDATE idempotency_ledger SET state = 'released', updated_at = ?
WHERE workspace_id = ? AND idempotency_key = ? AND state = 'claimed' AND message_id = ?
"""
_MARK_CALL_BEGAN = """
UPDATE idempotency_ledger SET call_began_at = ?
WHERE workspace_id = ? AND idempotency_key = ? AND state = 'claimed' AND message_id = ? AND lease_expires_at > ?
"""
# LedgerStore.adopt (ledger.may_adopt says the same in Python).
_ADOPT = """
INSERT INTO idempotency_ledger (workspace_id, idempotency_key, fingerprint, state, endpoint, message_id,
                                lease_expires_at, created_at, updated_at, message, call_began_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET
    fingerprint = excluded.fingerprint, state = excluded.state, endpoint = excluded.endpoint,
    message_id = excluded.message_id, lease_expires_at = excluded.lease_expires_at,
    created_at = excluded.created_at, updated_at = excluded.updated_at, message = excluded.message,
    call_began_at = CASE WHEN idempotency_ledger.message_id = excluded.message_id
                         THEN COALESCE(idempotency_ledger.call_began_at, excluded.call_began_at)
                         ELSE excluded.call_began_at END
WHERE idempotency_ledger.state = 'released'
   OR (idempotency_ledger.message_id = ? AND idempotency_ledger.state = 'claimed'
       AND idempotency_ledger.call_began_at IS NULL)
   OR (idempotency_ledger.message_id = excluded.message_id
       AND NOT (idempotency_ledger.state = 'completed' AND excluded.state <> 'completed'))
RETURNING idempotency_key
"""
_PURGE = "DELETE FROM idempotency_ledger WHERE created_at < ?"


def record_from_row(row: Mapping[str, Any]) -> LedgerRecord:
    message = row.get("message")
    return LedgerRecord(
        workspace_id=str(row["workspace_id"]),
        key=str(row["idempotency_key"]),
        fingerprint=str(row["fingerprint"]),
        state=LedgerState(str(row["state"])),
        endpoint=str(row["endpoint"]),
        lease_expires_at=_s(row["lease_expires_at"]),
        created_at=_s(row["created_at"]),
        updated_at=_s(row["updated_at"]),
        message=json.loads(message) if isinstance(message, str) else None,
        message_id=str(row.get("message_id") or ""),
        call_began_at=_call_began(row.get("call_began_at")),
    )


def _call_began(value: object) -> float | None:
    """The mark: a number, or None (SQL NULL; D1 through Pyodide may hand a JS null, which is no number either)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return CALL_BEGAN_UNRECORDED if value < 0 else _s(value)


def claim_params(record: LedgerRecord) -> list[object]:
    """The parameters of a claim's insert, in the order of claim_statement's row source."""
    return [
        record.workspace_id,
        record.key,
        record.fingerprint,
        record.endpoint,
        record.message_id,
        _ms(record.lease_expires_at),
        _ms(record.created_at),
        _ms(record.updated_at),
    ]


# Each ledger step as a statement, for stores that run it alone and for batches (one transaction of several).


def claim_call(record: LedgerRecord) -> Statement:
    """Rows: one (the key) if the claim was taken."""
    return _CLAIM, claim_params(record)


def get_call(workspace_id: str, key: str) -> Statement:
    """Rows: the record holding the key, if any."""
    return _GET, [workspace_id, key]


def complete_call(workspace_id: str, key: str, message: Mapping[str, object], now: float, message_id: str) -> Statement:
    """The record keeps `ledger_body(message)`: never the message content. A `not_sent` completion applies only to a
    claim without a call-began mark (is_not_sent)."""
    sql = _COMPLETE_NOT_SENT if is_not_sent(message) else _COMPLETE
    return sql, [json.dumps(ledger_body(message)), _ms(now), workspace_id, key, message_id]


def release_call(workspace_id: str, key: str, now: float, message_id: str) -> Statement:
    return _RELEASE, [_ms(now), workspace_id, key, message_id]


def mark_call_began_call(workspace_id: str, key: str, now: float, message_id: str) -> Statement:
    """Rows changed: one if the claim still holds the key with its lease live at `now` (LedgerStore.mark_call_began)."""
    return _MARK_CALL_BEGAN, [_ms(now), workspace_id, key, message_id, _ms(now)]


class SqlLedgerStore:
    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def try_claim(self, record: LedgerRecord) -> bool:
        rows = await self._db.fetch(*claim_call(record))
        return len(rows) == 1

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        rows = await self._db.fetch(*get_call(workspace_id, key))
        return record_from_row(rows[0]) if rows else None

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        await self._db.execute(*complete_call(workspace_id, key, message, now, message_id))

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        await self._db.execute(*release_call(workspace_id, key, now, message_id))

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        return await self._db.execute(*mark_call_began_call(workspace_id, key, now, message_id)) == 1

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        params = [*record_params(record, _adopted_mark(record.call_began_at)), replacing or "-"]  # "-": no message id
        rows = await self._db.fetch(_ADOPT, params)
        return len(rows) == 1

    async def purge(self, older_than: float) -> int:
        return await self._db.execute(_PURGE, [_ms(older_than)])


def record_params(record: LedgerRecord, call_began_at: int | None) -> list[object]:
    """A whole record as a row, in the column order of _ADOPT's insert (the message as `ledger_body` keeps it)."""
    message = json.dumps(ledger_body(record.message)) if record.message is not None else None
    return [
        record.workspace_id,
        record.key,
        record.fingerprint,
        record.state.value,
        record.endpoint,
        record.message_id,
        _ms(record.lease_expires_at),
        _ms(record.created_at),
        _ms(record.updated_at),
        message,
        call_began_at,
    ]


def _adopted_mark(call_began_at: float | None) -> int:
    """An adopted record's mark: another ledger's copy cannot say the call never began, so no mark is -1."""
    return -1 if call_began_at is None or call_began_at < 0 else _ms(call_began_at)


# ---- messages ---------------------------------------------------------------------------------------------------

_MESSAGE_COLUMNS = (
    "id, workspace_id, idempotency_key, to_number, content, contact_id, media_urls, status, endpoint, ledger, "
    "provider_message_id, segments, encoding, latency_ms, error, created_at, updated_at"
)
_NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM messages)"
_INSERT_MESSAGE = f"INSERT INTO messages ({_MESSAGE_COLUMNS}, seq) VALUES ({', '.join('?' * 17)}, {_NEXT_SEQ})"  # noqa: S608 (a constant)


def _status_rank(column: str) -> str:
    """A status's place in the one direction it moves (express_shim's delivery_status): unknown lowest, then
    queued < sent < delivered, and failed/undelivered; delivered, failed and undelivered are final."""
    return (
        f"CASE {column} WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2"
        " WHEN 'failed' THEN 3 WHEN 'undelivered' THEN 3 ELSE -1 END"
    )


# Whether the incoming status (and the error that goes with it) may replace the row's: the same, or a step forward
# out of a status that is not final. So a known status never goes back to unknown, nor delivered back to sent.
_STATUS_MOVES = (
    "(excluded.status = messages.status OR (messages.status NOT IN ('delivered', 'failed', 'undelivered')"
    f" AND {_status_rank('excluded.status')} > {_status_rank('messages.status')}))"
)
# The origin's copy of an edge send. Several origin processes sync from one cursor, so a page read earlier may be
# written last: a row never moves backwards (an older updated_at changes nothing; a status only forward; a known
# provider sid or latency is never replaced by null). One statement on SQLite and PostgreSQL.
_UPSERT_MESSAGE = (
    _INSERT_MESSAGE + f" ON CONFLICT (id) DO UPDATE SET status = CASE WHEN {_STATUS_MOVES} THEN excluded.status"
    " ELSE messages.status END,"
    f" error = CASE WHEN {_STATUS_MOVES} THEN excluded.error ELSE messages.error END,"
    " provider_message_id = COALESCE(excluded.provider_message_id, messages.provider_message_id),"
    " latency_ms = COALESCE(excluded.latency_ms, messages.latency_ms), updated_at = excluded.updated_at,"
    " seq = excluded.seq"
    " WHERE excluded.updated_at >= messages.updated_at"
)
_INSERT_MESSAGE_IF_CLAIMED = (
    f"INSERT INTO messages ({_MESSAGE_COLUMNS}, seq) SELECT {', '.join('?' * 17)}, {_NEXT_SEQ} "  # noqa: S608 (a constant)
    "WHERE EXISTS (SELECT 1 FROM idempotency_ledger WHERE workspace_id = ? AND idempotency_key = ? "
    "AND message_id = ? AND state = 'claimed')"
)


def changed_since_call(seq: int, limit: int, *, endpoint: str | None = None) -> Statement:
    """Rows: the messages changed after `seq`, oldest change first (each row once, at its latest change)."""
    where, params = "seq > ?", list[object]([seq])
    if endpoint is not None:
        where += " AND endpoint = ?"
        params.append(endpoint)
    return f"SELECT * FROM messages WHERE {where} ORDER BY seq LIMIT ?", [*params, limit]  # noqa: S608 (fixed clauses)


# A bounded delete (SQLite, D1 and PostgreSQL all take a LIMIT in the subquery): one statement never holds the
# writer for long, however large the backlog; the caller repeats it.
_PURGE_MESSAGES = "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE created_at < ? LIMIT ?)"


def message_insert_if_claimed_call(message: Mapping[str, Any], claim: LedgerRecord) -> Statement:
    """The message row, written only if `claim` holds its key: for a batch that claims and records together."""
    return _INSERT_MESSAGE_IF_CLAIMED, [*message_to_row(message), claim.workspace_id, claim.key, claim.message_id]


UPDATABLE_FIELDS = ("status", "provider_message_id", "latency_ms", "error", "segments", "encoding")


def message_update_call(workspace_id: str, message_id: str, fields: Mapping[str, Any], now: float) -> Statement:
    """The UPDATE of some of a message's UPDATABLE_FIELDS (and its `seq`, so the sync feed sees the change)."""
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(fields)
    values: list[object] = [
        json.dumps(fields[n]) if n == "error" and fields[n] is not None else fields[n] for n in names
    ]
    assignments = ", ".join(f"{n} = ?" for n in names)
    sql = f"UPDATE messages SET {assignments}, updated_at = ?, seq = {_NEXT_SEQ} WHERE workspace_id = ? AND id = ?"  # noqa: S608 (names are from UPDATABLE_FIELDS)
    return sql, [*values, _ms(now), workspace_id, message_id]


def conclusion_calls(
    claim: LedgerRecord, fields: Mapping[str, Any], now: float, message: Mapping[str, object] | None
) -> list[Statement]:
    """A send's end as one transaction: the message row takes the provider's answer (`fields`), and the claim is
    completed with `message`, or released when it is None (fenced by the claim's message id, like every step)."""
    update = message_update_call(claim.workspace_id, claim.message_id, fields, now)
    if message is None:
        return [update, release_call(claim.workspace_id, claim.key, now, claim.message_id)]
    return [update, complete_call(claim.workspace_id, claim.key, message, now, claim.message_id)]


def message_to_row(message: Mapping[str, Any]) -> list[object]:
    error = message.get("error")
    return [
        message["id"],
        message["workspace_id"],
        message["idempotency_key"],
        message["to"],
        message.get("content") or "",
        message.get("contact_id"),
        json.dumps(list(message.get("media_urls") or [])),
        message["status"],
        message["endpoint"],
        message.get("ledger") or "local",
        message.get("provider_message_id"),
        int(message.get("segments") or 1),
        message.get("encoding") or "GSM-7",
        message.get("latency_ms"),
        json.dumps(error) if error is not None else None,
        _ms(parse_rfc3339(str(message["created_at"]))),
        _ms(parse_rfc3339(str(message.get("updated_at") or message["created_at"]))),
    ]


def message_from_row(row: Mapping[str, Any]) -> dict[str, object]:
    error = row.get("error")
    message: dict[str, object] = {
        "id": row["id"],
        "workspace_id": row["workspace_id"],
        "idempotency_key": row["idempotency_key"],
        "to": row["to_number"],
        "content": row["content"],
        "contact_id": row.get("contact_id"),
        "media_urls": json.loads(row["media_urls"]) if row.get("media_urls") else [],
        "status": row["status"],
        "endpoint": row["endpoint"],
        "ledger": row["ledger"],
        "provider_message_id": row.get("provider_message_id"),
        "segments": row["segments"],
        "encoding": row["encoding"],
        "latency_ms": row.get("latency_ms"),
        "error": json.loads(error) if isinstance(error, str) else None,
        "created_at": rfc3339(_s(row["created_at"])),
        "updated_at": rfc3339(_s(row["updated_at"])),
        "requires_refresh": row["endpoint"] == "edge",
    }
    if "seq" in row:
        message["seq"] = row["seq"]
    return message


class SqlMessageStore:
    """Messages as an endpoint recorded them; newest first per workspace, and a `seq` feed of every change."""

    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def insert(self, message: Mapping[str, Any]) -> None:
        await self._db.execute(_INSERT_MESSAGE, message_to_row(message))

    async def upsert(self, message: Mapping[str, Any]) -> None:
        """Insert, or bring an existing row (same id) forward, never back (_UPSERT_MESSAGE): the origin's sync of
        edge sends."""
        await self._db.execute(_UPSERT_MESSAGE, message_to_row(message))

    async def update(self, workspace_id: str, message_id: str, fields: Mapping[str, Any], now: float) -> None:
        await self._db.execute(*message_update_call(workspace_id, message_id, fields, now))

    async def get(self, workspace_id: str, message_id: str) -> dict[str, object] | None:
        rows = await self._db.fetch(
            "SELECT * FROM messages WHERE workspace_id = ? AND id = ?", [workspace_id, message_id]
        )
        return message_from_row(rows[0]) if rows else None

    async def get_by_key(self, workspace_id: str, key: str) -> dict[str, object] | None:
        rows = await self._db.fetch(
            "SELECT * FROM messages WHERE workspace_id = ? AND idempotency_key = ? ORDER BY created_at DESC LIMIT 1",
            [workspace_id, key],
        )
        return message_from_row(rows[0]) if rows else None

    async def get_by_provider_id(self, provider_message_id: str) -> dict[str, object] | None:
        rows = await self._db.fetch(
            "SELECT * FROM messages WHERE provider_message_id = ? LIMIT 1", [provider_message_id]
        )
        return message_from_row(rows[0]) if rows else None

    async def list(
        self, workspace_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[dict[str, object]], str | None]:
        """Newest first. The cursor is `<created_ms>.<id>` of the last row of the previous page."""
        params: list[object] = [workspace_id]
        where = "workspace_id = ?"
        if cursor:
            created, _, last_id = cursor.partition(".")
            where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [int(created), int(created), last_id]
        rows = await self._db.fetch(
            f"SELECT * FROM messages WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608
            [*params, limit + 1],
        )
        page = rows[:limit]
        next_cursor = f"{page[-1]['created_at']}.{page[-1]['id']}" if len(rows) > limit else None
        return [message_from_row(r) for r in page], next_cursor

    async def changed_since(
        self, seq: int, limit: int = 100, *, endpoint: str | None = None
    ) -> builtins.list[dict[str, object]]:
        """Rows changed after `seq`, oldest change first (each row once, at its latest change)."""
        rows = await self._db.fetch(*changed_since_call(seq, limit, endpoint=endpoint))
        return [message_from_row(r) for r in rows]

    async def purge(self, older_than: float, *, limit: int) -> int:
        """Delete at most `limit` messages created before `older_than` (epoch seconds); how many went."""
        return await self._db.execute(_PURGE_MESSAGES, [_ms(older_than), limit])


def is_valid_cursor(cursor: str) -> bool:
    created, dot, last_id = cursor.partition(".")
    return bool(dot) and whole_number(created) is not None and last_id.startswith("msg_") and len(last_id) <= 40


class SqliteExecutor:
    """stdlib sqlite3 behind the async seam: for tests and single-process tools (calls run inline)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")

    def create_schema(self, *, upgrades: bool = True) -> None:
        """Core's tables as they are now; `upgrades=False`: as SCHEMA first made them (for tests that then apply an
        endpoint's own migrations, which carry the upgrades)."""
        for statement in full_schema_statements() if upgrades else schema_statements():
            self._conn.execute(statement)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, list(params))
        rows = [dict(r) for r in cursor.fetchall()]
        cursor.close()
        return rows

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cursor = self._conn.execute(sql, list(params))
        changed = cursor.rowcount
        cursor.close()
        return max(changed, 0)

    async def batch(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        results: list[list[dict[str, Any]]] = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                results.append(await self.fetch(sql, params))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return results

    def close(self) -> None:
        self._conn.close()
