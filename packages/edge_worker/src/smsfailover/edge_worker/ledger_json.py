"""LedgerRecord <-> JSON for the service ledger routes (docs/architecture.md, "Edge service routes").

Times travel as epoch seconds (numbers), the state as its string value; a malformed record is a 422 naming the
field, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ledger import CALL_BEGAN_UNRECORDED, LedgerRecord, LedgerState
from smsfailover.core.message import validate_idempotency_key, validate_workspace_id

_TIMES = ("lease_expires_at", "created_at", "updated_at")


def record_from_json(value: object, field: str = "record") -> LedgerRecord:
    data = require_object(value, field)
    workspace_id = require_str(data, "workspace_id", field)
    key = require_str(data, "key", field)
    validate_workspace_id(workspace_id)
    validate_idempotency_key(key)
    try:
        state = LedgerState(require_str(data, "state", field))
    except ValueError:
        raise _invalid(f"{field}.state", "must be claimed, completed or released") from None
    endpoint = require_str(data, "endpoint", field)
    if endpoint not in {"origin", "edge"}:
        raise _invalid(f"{field}.endpoint", "must be origin or edge")
    times = {name: require_number(data, name, field) for name in _TIMES}
    message = data.get("message")
    if message is not None and not isinstance(message, dict):
        raise _invalid(f"{field}.message", "must be an object or null")
    message_id = data.get("message_id", "")
    if not isinstance(message_id, str):
        raise _invalid(f"{field}.message_id", "must be a string")
    return LedgerRecord(
        workspace_id=workspace_id,
        key=key,
        fingerprint=require_str(data, "fingerprint", field),
        state=state,
        endpoint=endpoint,
        message=message,
        message_id=message_id,
        call_began_at=_mark(data, field),
        **times,
    )


def _mark(data: Mapping[str, Any], parent: str) -> float | None:
    """The sender's call-began mark: absent or null (not begun), -1 (a claim from before the mark: not recorded), or a
    time. Reconcile keeps it: an origin claim whose lease passed is unknown with a mark, never sent without one."""
    value = data.get("call_began_at")
    if value is None:
        return None
    if value == CALL_BEGAN_UNRECORDED:
        return CALL_BEGAN_UNRECORDED
    return require_number(data, "call_began_at", parent)


def require_object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(field, "must be a JSON object")
    return value


def require_str(data: Mapping[str, Any], name: str, parent: str | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(_path(parent, name), "must be a non-empty string")
    return value


MAX_EPOCH_S = 1e11  # year 5138: anything larger is not a time (and would overflow D1's integer milliseconds)


def require_number(data: Mapping[str, Any], name: str, parent: str | None = None) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_EPOCH_S:
        raise _invalid(_path(parent, name), "must be a non-negative number (epoch seconds)")
    return float(value)


def _path(parent: str | None, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _invalid(field: str, what: str) -> ApiError:
    return ApiError(422, "invalid_request", f"{field} {what}.", field=field)


def require_claim(value: object, field: str = "record") -> LedgerRecord:
    """A record sent to be claimed: valid, and in state claimed."""
    record = record_from_json(value, field)
    if record.state is not LedgerState.CLAIMED:
        raise ApiError(422, "invalid_request", "A claim must be in state claimed.", field=f"{field}.state")
    return record


def ws_key(workspace_id: str, key: str) -> tuple[str, str]:
    validate_workspace_id(workspace_id)
    validate_idempotency_key(key)
    return workspace_id, key


def time_or_now(data: Mapping[str, Any], clock: Clock) -> float:
    """The operation's `now` (epoch seconds) when it gives one, else the edge's clock."""
    return require_number(data, "now") if "now" in data else clock.time()
