from __future__ import annotations

import subprocess
import sys

import pytest
import smsfailover.core as sdk
from smsfailover.core.client import FailoverClient


def test_public_names_resolve_to_their_modules() -> None:
    assert sdk.FailoverClient is FailoverClient
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None
    assert set(sdk.__all__) <= set(dir(sdk))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = sdk.no_such_name


def test_importing_a_submodule_does_not_import_the_client() -> None:
    code = "import sys, smsfailover.core.breaker; print('smsfailover.core.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
