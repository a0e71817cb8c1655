"""tools/vendor.py: core and its pure-Python dependencies, copied (not linked) into python_modules/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from .host_process import REPO_ROOT

spec = importlib.util.spec_from_file_location("edge_vendor", REPO_ROOT / "packages/edge_worker/tools/vendor.py")
assert spec is not None
assert spec.loader is not None
vendor_tool = importlib.util.module_from_spec(spec)
sys.modules["edge_vendor"] = vendor_tool
spec.loader.exec_module(vendor_tool)


def test_vendor_copies_core_and_its_dependencies(tmp_path: Path) -> None:
    target = tmp_path / "python_modules"
    packages = vendor_tool.vendor(target)
    assert {p.distribution for p in packages} == {"phonenumberslite", "pyjwt"}
    assert (target / "smsfailover" / "core" / "__init__.py").is_file()
    assert not (target / "smsfailover" / "__init__.py").exists(), "smsfailover must stay a PEP 420 namespace"
    assert (target / "phonenumbers" / "__init__.py").is_file()
    assert (target / "jwt" / "__init__.py").is_file()
    files = list(target.rglob("*"))
    assert not [f for f in files if f.is_symlink()]
    assert not [f for f in files if f.suffix in {".so", ".pyd", ".pyc"}]


def test_vendor_replaces_a_stale_tree(tmp_path: Path) -> None:
    target = tmp_path / "python_modules"
    (target / "stale_package").mkdir(parents=True)
    vendor_tool.vendor(target)
    assert not (target / "stale_package").exists()


def test_vendor_refuses_a_file_as_target(tmp_path: Path) -> None:
    target = tmp_path / "python_modules"
    target.write_text("not a directory")
    with pytest.raises(vendor_tool.VendorError):
        vendor_tool.vendor(target)
