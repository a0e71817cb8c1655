"""The browser suite: Debian's Chromium, headless, driven by Playwright, against the real processes of the
shared stack (origin, edge host, provider simulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.contract.fixtures import stack, tokens
from tests.contract.kit import Tokens
from tests.support.fixtures import Stack

__all__ = ["Tokens", "stack", "tokens"]  # shared session fixtures, registered here

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread while it is
# open, and every pytest-asyncio test collected after this directory would fail with "Runner.run() cannot be
# called from a running event loop" if the browser lived until the end of the session.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (CI's .ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _stack_running(stack: Stack) -> Iterator[None]:
    """A test that stopped a process leaves the stack whole for the next one."""
    yield
    stack.ensure_running()
