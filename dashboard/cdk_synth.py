"""The synthesized CloudWatch dashboards and alarms of a stage, cached on disk, synthesized off the page.

`python -m infra.preview` (a child process: the CDK's jsii and Node never load in the dashboard's own
process) writes ``$FLEETSCOPE_HOME/cdk-preview/<stage>-<hash>.json``, where the hash covers every file
the synthesis depends on (``infra/``, ``contract/``, ``cdk.json``): a change to a construct makes a
new file on the next visit, an unchanged checkout reads the cached one. `SynthJob` runs one synthesis
in a background thread so a page can show that it is under way (about 20-30 s) and redraw when done.
No Streamlit here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("infra", "contract")  # the packages the synthesis reads, besides cdk.json
EXPECTED_S = 30.0  # a synthesis on the 2-core machine (for the progress bar)


class SynthError(RuntimeError):
    """The CDK app could not be synthesized here; the message has the tool's last lines."""


def source_hash(root: Path = ROOT) -> str:
    """A digest of every input of the synthesis: the .py files of `INPUTS` and cdk.json."""
    digest = hashlib.sha256()
    files = [root / "cdk.json"]
    for package in INPUTS:
        files.extend(sorted((root / package).rglob("*.py")))
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def preview_file(home: Path, stage: str, digest: str) -> Path:
    return home / "cdk-preview" / f"{stage}-{digest}.json"


def read_preview_file(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SynthError(f"cannot read the synthesized dashboards {path}: {err}") from err
    return document


def synthesize(stage: str, out: Path, *, root: Path = ROOT, timeout_s: float = 600.0) -> None:
    """Run `python -m infra.preview --stage STAGE --out OUT` (blocking)."""
    if not (root / "infra" / "preview.py").exists():
        raise SynthError(f"the CDK app is not in this installation ({root / 'infra'} is missing)")
    env = os.environ | {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "infra.preview", "--stage", stage, "--out", str(out)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthError(f"synthesizing the CDK app failed: {err}") from err
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise SynthError(f"synthesizing the CDK app failed (exit {result.returncode}):\n{tail}")


class SynthJob:
    """One synthesis of `stage` into `out`, in a daemon thread; `done`, `error`, `elapsed_s`."""

    def __init__(self, stage: str, out: Path, *, root: Path = ROOT) -> None:
        self.stage, self.out, self.root = stage, out, root
        self.error: SynthError | None = None
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cdk-synth-{stage}", daemon=True)

    def start(self) -> SynthJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            synthesize(self.stage, self.out, root=self.root)
        except SynthError as err:
            self.error = err
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)
