"""smsfailover.core: the SDK's public names (CONTRACT §4). Pure Python; imports under Pyodide.

from smsfailover.core import FailoverClient, SyncFailoverClient, SendResult, SmsFailoverError
client = FailoverClient.from_env()
result = await client.send_message(to="+16266635938", content="Hi", workspace_id="15213")
"""

from __future__ import annotations

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
