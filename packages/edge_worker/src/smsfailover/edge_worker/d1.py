"""core's SqlExecutor over a Cloudflare D1 binding (`env.DB`).

Under workerd, and under the local host, the workers SDK wraps the binding so a statement's `all()`/`run()`
result arrives as a Python dict (`workers.rpc.JsDict`); a raw JsProxy (a binding used without the SDK's
wrapper) is converted with `to_py()`. D1 takes null, numbers, strings and bytes as parameters.

core's stores write one statement at a time and each is atomic on its own (a claim is a single
`INSERT ... ON CONFLICT ... RETURNING`), so nothing here needs D1's `batch()`; the host uses it for migrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class D1Error(Exception):
    """D1 refused a statement; the message keeps D1's reason, never the parameters."""


class D1Executor:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        result = await self._call(sql, params, "all")
        return [dict(row) for row in result.get("results") or []]

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        result = await self._call(sql, params, "run")
        return int((result.get("meta") or {}).get("changes") or 0)

    async def _call(self, sql: str, params: Sequence[object], method: str) -> dict[str, Any]:
        try:
            statement = self._db.prepare(sql).bind(*_params(params))
            result = _to_python(await getattr(statement, method)())
        except Exception as exc:
            raise D1Error(str(exc)) from exc
        return dict(result)


def _params(params: Sequence[object]) -> list[object]:
    # D1 has no boolean type (SQLite stores 0/1); bytes pass through as ArrayBuffer-compatible buffers.
    return [int(p) if isinstance(p, bool) else p for p in params]


def _to_python(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value
