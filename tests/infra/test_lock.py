"""uv.lock: what the venv and the Lambda bundles install, with wheels for the Lambda runtime's platform."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from infra.bundling import (
    LOCK_FILE,
    ROOT,
    RUNTIME_PROVIDED,
    BundleError,
    BundleSpec,
    locked_requirements,
    monitor_bundle_spec,
    service_bundle_spec,
)
from infra.constructs.lambda_function import RUNTIME_PYTHON_VERSION


def _lambda_tags() -> set[Tag]:
    """Every wheel tag CPython 3.14 on arm64 Amazon Linux 2023 (glibc 2.34) accepts."""
    version = tuple(int(part) for part in RUNTIME_PYTHON_VERSION.split("."))
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(34, 16, -1)]
    platforms += ["manylinux2014_aarch64", "linux_aarch64"]
    return set(cpython_tags(version, platforms=platforms)) | set(
        compatible_tags(version, platforms=platforms)
    )


def _pins(requirements: tuple[str, ...]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in requirements:
        name, _, rest = line.partition("==")
        pins[canonicalize_name(name)] = rest.split(";")[0].split()[0]
    return pins


def test_bundle_requirements_are_the_locks_exact_pins_with_hashes() -> None:
    """Given uv.lock, when the monitor bundle's requirements are read, then every line pins one version
    with its hashes, the scientific stack is there and the runtime-provided boto3 closure is not."""
    requirements = monitor_bundle_spec(RUNTIME_PYTHON_VERSION).requirements
    assert all("==" in line and "--hash=sha256:" in line for line in requirements), requirements
    pins = _pins(requirements)
    assert {"numpy", "scipy", "scikit-learn", "pydantic-core", "aws-lambda-powertools"} <= set(pins)
    assert not set(pins) & RUNTIME_PROVIDED
    assert set(_pins(service_bundle_spec(RUNTIME_PYTHON_VERSION).requirements)) < set(pins)


@pytest.mark.parametrize("spec", [service_bundle_spec, monitor_bundle_spec])
def test_lock_holds_a_wheel_for_the_lambda_runtime_of_every_bundled_package(
    spec: Callable[[str], BundleSpec],
) -> None:
    """Given the packages a bundle ships, then uv.lock records, for each pinned version, a wheel that
    CPython 3.14 on arm64 Linux installs (the bundles are built from wheels only)."""
    bundle = spec(RUNTIME_PYTHON_VERSION)
    lock = tomllib.loads(LOCK_FILE.read_text())
    wheels = {
        (canonicalize_name(p["name"]), p["version"]): [
            w["url"].rsplit("/", 1)[1] for w in p.get("wheels", [])
        ]
        for p in lock["package"]
    }
    tags = _lambda_tags()
    missing = [
        f"{name}=={version}"
        for name, version in _pins(bundle.requirements).items()
        if not any(parse_wheel_filename(w)[3] & tags for w in wheels[(name, version)])
    ]
    assert not missing, (
        f"no cp{RUNTIME_PYTHON_VERSION.replace('.', '')} aarch64 wheel in uv.lock for {missing}"
    )


def test_a_lock_out_of_date_with_pyproject_fails_the_bundle_instead_of_resolving_again(
    tmp_path: Path,
) -> None:
    """Given a pyproject.toml whose floors changed after uv.lock was written, when the bundle's
    requirements are read, then it fails and says the lock needs updating."""
    shutil.copy(LOCK_FILE, tmp_path / "uv.lock")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"pydantic>=2.10,<3"' in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"pydantic>=2.10,<3"', '"pydantic>=2.11,<3"'))
    with pytest.raises(BundleError, match="needs to be updated"):
        locked_requirements(project=tmp_path)
