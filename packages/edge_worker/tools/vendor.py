"""Copy smsfailover.core and its pure-Python dependencies into `python_modules/` beside wrangler.toml.

Cloudflare Python Workers bundle `python_modules/` as vendored packages; wrangler cannot follow directory
symlinks there, so these are real copies. The local edge host mounts the same tree.

    uv run python packages/edge_worker/tools/vendor.py [--target DIR]

The dependency list is read from core's installed metadata (no extras), followed transitively; a distribution
that ships a compiled extension is refused, since the Worker cannot load it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[3]
CORE_SRC = REPO_ROOT / "packages" / "core" / "src" / "smsfailover" / "core"
CORE_DISTRIBUTION = "smsfailover-core"
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", "py.typed")


class VendorError(Exception):
    """The vendored tree cannot be built; the message says which package and why."""


@dataclass(frozen=True, slots=True)
class VendoredPackage:
    distribution: str
    top_level: tuple[str, ...]


def runtime_requirements(distribution: str) -> list[str]:
    """Names of the distributions `distribution` needs at run time in a plain install (no extras)."""
    names = []
    for spec in metadata.requires(distribution) or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def top_level_names(distribution: str) -> tuple[str, ...]:
    dist = metadata.distribution(distribution)
    names: set[str] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
            continue
        if str(file).endswith(COMPILED_SUFFIXES):
            raise VendorError(f"{distribution} ships a compiled extension ({file}); the Worker cannot load it")
        if len(parts) == 1:
            if parts[0].endswith(".py"):
                names.add(parts[0])
        else:
            names.add(parts[0])
    return tuple(sorted(names))


def dependency_closure(root: str) -> list[VendoredPackage]:
    seen: dict[str, VendoredPackage] = {}
    pending = runtime_requirements(root)
    while pending:  # bounded: each distribution is visited once
        name = pending.pop()
        key = metadata.distribution(name).metadata["Name"].lower()
        if key in seen:
            continue
        seen[key] = VendoredPackage(key, top_level_names(name))
        pending.extend(runtime_requirements(name))
    return sorted(seen.values(), key=lambda p: p.distribution)


def site_root(distribution: str) -> Path:
    return Path(str(metadata.distribution(distribution).locate_file("")))


def vendor(target: Path) -> list[VendoredPackage]:
    if target.is_symlink() or target.is_file():
        raise VendorError(f"{target} must be a directory")
    shutil.rmtree(target, ignore_errors=True)
    (target / "smsfailover").mkdir(parents=True)
    # PEP 420: no smsfailover/__init__.py, so the bundle's smsfailover.edge_worker and core share the name.
    shutil.copytree(CORE_SRC, target / "smsfailover" / "core", ignore=IGNORED)
    packages = dependency_closure(CORE_DISTRIBUTION)
    for package in packages:
        root = site_root(package.distribution)
        for name in package.top_level:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORED)
            else:
                shutil.copy2(source, target / name)
    return packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", type=Path, default=REPO_ROOT / "python_modules")
    args = parser.parse_args(argv)
    try:
        packages = vendor(args.target)
    except (VendorError, metadata.PackageNotFoundError) as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(f"{p.distribution} ({' '.join(p.top_level)})" for p in packages)
    print(f"vendored smsfailover.core and {names} into {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
