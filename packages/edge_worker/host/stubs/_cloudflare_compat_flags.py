"""Stand-in for workerd's internal `_cloudflare_compat_flags` (local host only, never bundled).

workerd derives these from `compatibility_flags` and `compatibility_date`; the host answers False for every
flag except the ones listed, which match the compatibility date in wrangler.toml.
"""

from __future__ import annotations

_ENABLED = frozenset({"python_workflows_implicit_dependencies"})


def __getattr__(name: str) -> bool:
    if name.startswith("__"):
        raise AttributeError(name)
    return name in _ENABLED
