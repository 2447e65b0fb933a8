"""The bundler precompiles bytecode with an interpreter of the Lambda runtime's version found on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.bundling import runtime_interpreter


def _fake_python(directory: Path, version: str) -> Path:
    script = directory / f"python{version}"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)
    return script


def test_the_interpreter_of_the_runtimes_version_comes_from_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a python3.14 on PATH, when the bundler looks for one, then it is that one."""
    fake = _fake_python(tmp_path, "3.14")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert runtime_interpreter("3.14") == fake


def test_no_interpreter_outside_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a PATH without the version (this very interpreter's, installed somewhere on the machine),
    when the bundler looks for it, then it finds none: no machine-specific directory is searched."""
    version = "{}.{}".format(*sys.version_info[:2])
    monkeypatch.setenv("PATH", str(tmp_path))
    assert runtime_interpreter(version) is None


def test_a_name_on_path_that_runs_another_version_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a python3.14 on PATH that reports another version (a stale shim), then it is not used."""
    script = _fake_python(tmp_path, "3.14")
    script.write_text("#!/bin/sh\necho 3.13\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert runtime_interpreter("3.14") is None
