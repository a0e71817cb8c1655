"""The simulator's settings: the credentials it accepts and how fast delivery status advances."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")


class SimulatorConfigError(ValueError):
    """The simulator cannot start with these settings; the message says which variable to set."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    account_sid: str
    auth_token: str
    # Pause before each status step (queued -> sent -> delivered) and its callback.
    callback_delay_s: float = 0.05
    callback_timeout_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, callback_delay_s: float = 0.05) -> SimulatorConfig:
        sid = env.get("TWILIO_ACCOUNT_SID", "")
        token = env.get("TWILIO_AUTH_TOKEN", "")
        if not ACCOUNT_SID.match(sid):
            raise SimulatorConfigError("set TWILIO_ACCOUNT_SID to an account SID (AC + 32 hex digits)")
        if not token:
            raise SimulatorConfigError("set TWILIO_AUTH_TOKEN to the auth token the simulator should accept")
        if callback_delay_s < 0:
            raise SimulatorConfigError("the callback delay cannot be negative")
        return cls(account_sid=sid, auth_token=token, callback_delay_s=callback_delay_s)
