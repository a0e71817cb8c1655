"""smsfailover.core: the SDK's public names (CONTRACT §4). Pure Python; imports under Pyodide.

    from smsfailover.core import FailoverClient, SyncFailoverClient, SendResult, SmsFailoverError
    client = FailoverClient.from_env()
    result = await client.send_message(to="+16266635938", content="Hi", workspace_id="15213")

The names resolve lazily (PEP 562), so `import smsfailover.core.ledger` in the worker or the origin does not
pull in the client, and importing the package costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsfailover.core.client import (
        FailoverClient,
        SendResult,
        SyncFailoverClient,
        get_sms_failover_status,
        reset_circuit_breaker,
        send_message,
        send_sms_with_conditional_failover,
    )
    from smsfailover.core.config import ClientConfig
    from smsfailover.core.errors import ConfigurationError, MessageRejected, SendFailed, SmsFailoverError
    from smsfailover.core.router import Attempt

_HOMES = {
    "Attempt": "router",
    "ClientConfig": "config",
    "ConfigurationError": "errors",
    "FailoverClient": "client",
    "MessageRejected": "errors",
    "SendFailed": "errors",
    "SendResult": "client",
    "SmsFailoverError": "errors",
    "SyncFailoverClient": "client",
    "get_sms_failover_status": "client",
    "reset_circuit_breaker": "client",
    "send_message": "client",
    "send_sms_with_conditional_failover": "client",
}

__all__ = [
    "Attempt",
    "ClientConfig",
    "ConfigurationError",
    "FailoverClient",
    "MessageRejected",
    "SendFailed",
    "SendResult",
    "SmsFailoverError",
    "SyncFailoverClient",
    "get_sms_failover_status",
    "reset_circuit_breaker",
    "send_message",
    "send_sms_with_conditional_failover",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'smsfailover.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"smsfailover.core.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
