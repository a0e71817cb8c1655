"""Stand-in for workerd's internal `_pyodide_entrypoint_helper` (local host only, never bundled).

The real module hands the SDK the `cloudflare:workers` module and patches `ctx.waitUntil`; the host sets
`cloudflareWorkersModule` once it has built `env`, and its `ctx.waitUntil` already accepts promises.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

cloudflareWorkersModule: Any = None
cloudflareSocketsModule: Any = None


def doAnImport(module_name: str) -> Any:
    raise ImportError(f"the local edge host cannot import the JavaScript module {module_name!r}")


def patch_env_helper(kwds: Any) -> Generator[None]:
    yield


def patchWaitUntil(ctx: Any) -> None:
    return None
