"""The simulator suite runs one real simulator process (tests/support) and talks HTTP to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.simulator.kit import CallbackReceiver, Twilio
from tests.support.fixtures import RunningSimulator, simulator

__all__ = ["simulator"]


@pytest.fixture
def twilio(simulator: RunningSimulator) -> Iterator[Twilio]:
    secrets = simulator.secrets
    auth = (secrets.twilio_account_sid, secrets.twilio_auth_token)
    with httpx2.Client(base_url=simulator.url, auth=auth, timeout=10.0) as http:
        http.delete("/_sim/messages").raise_for_status()
        yield Twilio(http, secrets)
        http.delete("/_sim/faults").raise_for_status()


@pytest.fixture
def callbacks() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()
