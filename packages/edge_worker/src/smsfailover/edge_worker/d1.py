"""core's SqlExecutor over a Cloudflare D1 binding (`env.DB`).

Under workerd, and under the local host, the workers SDK wraps the binding so a statement's `all()`/`run()`
result arrives as a Python dict (`workers.rpc.JsDict`); a raw JsProxy (a binding used without the SDK's
wrapper) is converted with `to_py()`. D1 takes null, numbers, strings and bytes as parameters.
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

    async def execute_many(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        """Run several writes in one D1 batch: one round trip, one transaction."""
        prepared = [self._db.prepare(sql).bind(*_params(params)) for sql, params in statements]
        try:
            results = _to_python(await self._db.batch(prepared))
        except Exception as exc:  # JsException under Pyodide; its text is D1's reason
            raise D1Error(str(exc)) from exc
        return [int((r.get("meta") or {}).get("changes") or 0) for r in results]

    async def _call(self, sql: str, params: Sequence[object], method: str) -> dict[str, Any]:
        statement = self._db.prepare(sql).bind(*_params(params))
        try:
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
