"""core's SqlExecutor over a Cloudflare D1 binding (`env.DB`).

worker.py hands this the raw JS binding, not the workers SDK's wrapper: the wrapper converts every argument and
result one JS call at a time, which cost most of an edge ledger batch's time (docs/scaling.md). Here a batch is one
`to_js` of the prepared statements and one `to_py()` of the whole result. D1 takes null, numbers, strings and
bytes as parameters (Python None becomes JS null: D1 refuses `undefined`). An SDK-wrapped binding still works for
single statements (its results arrive already converted).

core's stores write one statement at a time and each is atomic on its own (a claim is a single
`INSERT ... ON CONFLICT ... RETURNING`). `batch()` runs several as one round trip and one transaction: the
origin's batched ledger operations and the completion of the edge's own sends (docs/scaling.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from smsfailover.core.sql import Statement


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

    async def batch(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        try:
            prepared = [self._db.prepare(sql).bind(*_params(params)) for sql, params in statements]
            results = _to_python(await self._db.batch(_to_js(prepared)))
        except Exception as exc:
            raise D1Error(str(exc)) from exc
        return [[dict(row) for row in dict(result).get("results") or []] for result in results]

    async def _call(self, sql: str, params: Sequence[object], method: str) -> dict[str, Any]:
        try:
            statement = self._db.prepare(sql).bind(*_params(params))
            result = _to_python(await getattr(statement, method)())
        except Exception as exc:
            raise D1Error(str(exc)) from exc
        return dict(result)


def _params(params: Sequence[object]) -> list[object]:
    # D1 has no boolean type (SQLite stores 0/1); bytes pass through as ArrayBuffer-compatible buffers.
    return [_JSNULL if p is None else int(p) if isinstance(p, bool) else p for p in params]


if sys.platform == "emscripten":  # resolved once: every statement passes through here
    from pyodide.ffi import jsnull as _JSNULL  # type: ignore[attr-defined]  # newer than the installed stubs
    from pyodide.ffi import to_js as _to_js
else:  # CPython (tests): no JS to convert to
    _JSNULL = None

    def _to_js(values: list[Any]) -> Any:
        return values


def _to_python(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value
