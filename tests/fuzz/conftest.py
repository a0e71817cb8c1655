"""The fuzz suite runs against the same real stack as the contract and end-to-end suites."""

from __future__ import annotations

from tests.contract.fixtures import stack

__all__ = ["stack"]  # registers the shared session fixture for this directory
