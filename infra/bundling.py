"""Lambda bundles built locally, without Docker, and cached by content hash under ``build/bundles``.

A bundle is the function's requirements at the exact versions ``uv.lock`` pins (``uv export --locked``,
hashes included), installed for the Lambda runtime's platform with ``uv pip install --python-platform
aarch64-manylinux_2_34 --python-version 3.14 --only-binary :all: --no-deps --target DIR``, plus the
project packages of the function, trimmed of what a Lambda never loads. A lock out of date with
``pyproject.toml`` fails the build. The directory name carries a hash of everything that goes into it
(the pinned requirements included), so a synthesis rebuilds only when the lock or the sources change,
and ``Code.from_asset`` reuses the hash instead of re-hashing a 170 MB tree.

Run ``python -m infra.bundling`` to build every bundle and print its size.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "bundles"
DEPS_DIR = ROOT / "build" / "deps"
# Bumped whenever the build recipe below changes, so cached bundles are rebuilt.
RECIPE_VERSION = "5"
LOCK_FILE = ROOT / "uv.lock"
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): every manylinux wheel up to it.
LAMBDA_PLATFORM = "aarch64-manylinux_2_34"
# Provided by the Lambda Python runtime (boto3 and its dependency closure), so not shipped: the code
# uses long-stable APIs (DynamoDB, SQS, SNS, EventBridge, CloudWatch) and the runtime's boto3 is kept
# current by AWS. aws-xray-sdk pulls botocore in; a second copy would add ~30 MB unzipped.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# Directories and files a Lambda never loads.
_TRIM_DIRS = frozenset({"tests", "__pycache__"})
_TRIM_SUFFIXES = (".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".f", ".f90", ".md")
_KEEP_DIST_INFO = frozenset({"METADATA", "top_level.txt", "entry_points.txt"})
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


class BundleError(RuntimeError):
    """A bundle could not be built; the message carries uv's output."""


@dataclass(frozen=True, kw_only=True)
class BundleSpec:
    """What goes into one deployment package."""

    name: str
    requirements: tuple[str, ...]  # pinned, with hashes, one line each (see locked_requirements)
    packages: tuple[str, ...]  # project packages copied as source, e.g. ("service",)
    python_version: str  # of the Lambda runtime, e.g. "3.14"
    # Paths under `packages` that are not shipped: workstation entry points. Every `__main__.py` is
    # left out as well (a Lambda imports its handler; it never runs a package as a script).
    exclude: tuple[str, ...] = field(default=())
    platform: str | None = LAMBDA_PLATFORM  # uv's --python-platform; None = this machine (host_variant)
    precompile: bool = True


@dataclass(frozen=True, kw_only=True)
class Bundle:
    spec: BundleSpec
    path: Path
    content_hash: str
    precompiled: bool

    def unzipped_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def zipped_bytes(self) -> int:
        """Size of the deflated zip the CDK CLI uploads (built next to the bundle, cached)."""
        archive = self.path.with_suffix(".zip")
        if not archive.exists():
            tmp = archive.with_suffix(".zip.tmp")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
                    zf.write(file, file.relative_to(self.path))
            tmp.replace(archive)
        return archive.stat().st_size


def locked_requirements(extras: Iterable[str] = (), *, project: Path = ROOT) -> tuple[str, ...]:
    """The closure of the project's dependencies (plus ``extras``) at the versions uv.lock pins, as
    requirement lines with their markers and hashes, less what the Lambda runtime provides.

    ``--locked``: a lock that no longer matches pyproject.toml is an error, never a silent re-resolve."""
    from uv import find_uv_bin

    command = [find_uv_bin(), "export", "--locked", "--format", "requirements-txt", "--no-dev"]
    command += ["--no-emit-project", "--no-header", "--no-annotate", "--project", str(project)]
    command += [f"--extra={extra}" for extra in extras]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundleError(f"uv export failed ({LOCK_FILE.name} is required):\n{result.stderr}")
    lines = (line.strip() for line in result.stdout.replace("\\\n", " ").splitlines())
    requirements = (" ".join(line.split()) for line in lines if line and not line.startswith("#"))
    return tuple(r for r in requirements if _dist_name(r) not in RUNTIME_PROVIDED)


def _dist_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def service_bundle_spec(python_version: str) -> BundleSpec:
    """cars-api, telemetry-ingest and outbox-relay share one package: Powertools and pydantic."""
    return BundleSpec(
        name="service",
        requirements=locked_requirements(),
        packages=("contract", "service"),
        # the `python -m service.ingest.redrive` and `python -m service.relay.redrive` entry points
        exclude=("service/ingest/redrive", "service/relay/redrive"),
        python_version=python_version,
    )


def monitor_bundle_spec(python_version: str) -> BundleSpec:
    """The monitor adds numpy, scipy and scikit-learn (the ``monitor`` extra)."""
    return BundleSpec(
        name="monitor",
        requirements=locked_requirements(["monitor"]),
        packages=("contract", "monitor"),
        python_version=python_version,
    )


def host_variant(spec: BundleSpec) -> BundleSpec:
    """The same recipe (requirements, runtime-provided removal, trimming, sources) for this machine's
    Python and platform: a test imports the handlers from it to prove trimming broke nothing."""
    return replace(
        spec,
        name=f"{spec.name}-host",
        python_version="{}.{}".format(*sys.version_info[:2]),
        platform=None,
        precompile=False,
    )


def _source_files(spec: BundleSpec) -> list[Path]:
    files: list[Path] = []
    for package in spec.packages:
        files.extend(
            p for p in sorted((ROOT / package).rglob("*")) if p.is_file() and _is_shipped_source(spec, p)
        )
    return files


def _is_shipped_source(spec: BundleSpec, path: Path) -> bool:
    relative = path.relative_to(ROOT)
    if path.name == "__main__.py" or any(relative.is_relative_to(e) for e in spec.exclude):
        return False
    return path.suffix in (".py", ".json", ".typed") and not set(relative.parts) & {"__pycache__", "tests"}


def content_hash(spec: BundleSpec) -> str:
    digest = hashlib.sha256()
    for item in (spec.name, dependencies_hash(spec)):
        digest.update(item.encode() + b"\0")
    for source in _source_files(spec):
        digest.update(str(source.relative_to(ROOT)).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def runtime_interpreter(python_version: str) -> Path | None:
    """``python3.14`` (the runtime's version) found on PATH, to precompile bytecode with; None if absent."""
    found = shutil.which(f"python{python_version}")
    if found is None:
        return None
    try:
        out = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # e.g. a pyenv shim of a version not installed
        return None
    return Path(found) if out == python_version else None


@contextmanager
def _locked(name: str) -> Iterator[None]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    DEPS_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def dependencies_hash(spec: BundleSpec) -> str:
    digest = hashlib.sha256()
    for item in (
        RECIPE_VERSION,
        spec.python_version,
        spec.platform or "host",
        *sorted(spec.requirements),
        *sorted(RUNTIME_PROVIDED),
    ):
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:20]


def _dependencies(spec: BundleSpec, *, log: bool) -> tuple[Path, bool]:
    """The installed, trimmed third-party packages of ``spec`` (cached by requirements only)."""
    digest = dependencies_hash(spec)
    target = DEPS_DIR / f"{spec.name}-{digest}"
    marker = target / ".fleetscope-deps"
    if marker.exists():
        return target, marker.read_text().strip() == "precompiled"
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if log:
        print(
            f"[bundling] uv pip install of {LOCK_FILE.name}'s pins for the {spec.name} bundle "
            f"(python {spec.python_version}, {spec.platform or 'this machine'})",
            file=sys.stderr,
        )
    _install(spec, staging)
    shutil.rmtree(staging / "bin", ignore_errors=True)  # console scripts: a Lambda runs none
    _trim(staging)
    interpreter = runtime_interpreter(spec.python_version) if spec.precompile else None
    if interpreter is not None:
        _precompile(interpreter, staging)
    elif log and spec.precompile:
        print(
            f"[bundling] no local python{spec.python_version}: bytecode is not precompiled", file=sys.stderr
        )
    (staging / ".fleetscope-deps").write_text("precompiled" if interpreter else "source-only")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    _keep_newest(DEPS_DIR, spec.name, keep=2)
    return target, interpreter is not None


def build_bundle(spec: BundleSpec, *, log: bool = True) -> Bundle:
    """The bundle directory for ``spec``, built once per content hash (safe across processes).

    Dependencies are installed once per requirements hash under ``build/deps``; a bundle is a
    hard-linked copy of them plus the project sources, so a source edit costs a second, not an install.
    """
    digest = content_hash(spec)
    target = BUILD_DIR / f"{spec.name}-{digest}"
    marker = target / ".fleetscope-bundle"
    with _locked(spec.name):
        if marker.exists():
            return Bundle(
                spec=spec,
                path=target,
                content_hash=digest,
                precompiled=marker.read_text().strip() == "precompiled",
            )
        deps, precompiled = _dependencies(spec, log=log)
        staging = BUILD_DIR / f"{spec.name}-{digest}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            deps, staging, copy_function=os.link, ignore=shutil.ignore_patterns(".fleetscope-deps")
        )
        _copy_sources(spec, staging)
        interpreter = runtime_interpreter(spec.python_version) if precompiled else None
        if interpreter is not None:
            for package in spec.packages:
                _precompile(interpreter, staging / package)
        (staging / ".fleetscope-bundle").write_text("precompiled" if precompiled else "source-only")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        _keep_newest(BUILD_DIR, spec.name, keep=3)
        return Bundle(spec=spec, path=target, content_hash=digest, precompiled=precompiled)


def _keep_newest(directory: Path, name: str, *, keep: int) -> None:
    """Drop old builds of ``name`` (other processes may still read the newest few)."""
    own = re.compile(rf"{re.escape(name)}-(src-)?[0-9a-f]{{20}}")  # not "service-host-…" for "service"
    builds = sorted(
        (p for p in directory.iterdir() if p.is_dir() and own.fullmatch(p.name)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in builds[keep:]:
        shutil.rmtree(stale, ignore_errors=True)
        stale.with_suffix(".zip").unlink(missing_ok=True)


def stage_sources(spec: BundleSpec) -> Bundle:
    """Project sources only, no dependencies: a fast stand-in for synth-only runs. Never deploy it."""
    digest = "src-" + content_hash(spec)
    target = BUILD_DIR / f"{spec.name}-{digest}"
    with _locked(spec.name):
        if not target.exists():
            staging = target.with_name(target.name + ".staging")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            _copy_sources(spec, staging)
            staging.rename(target)
    return Bundle(spec=spec, path=target, content_hash=digest, precompiled=False)


def _install(spec: BundleSpec, target: Path) -> None:
    """``uv pip install`` of the pinned requirements alone (``--no-deps``: the lock's closure is complete,
    less the runtime-provided packages), wheels only, hashes checked."""
    from uv import find_uv_bin

    requirements = target.parent / f"{target.name}.requirements.txt"
    requirements.write_text("\n".join(spec.requirements) + "\n")
    command = [find_uv_bin(), "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:"]
    command += ["--require-hashes", "--no-config", "--target", str(target), "-r", str(requirements)]
    if spec.platform is not None:  # cross-install for the Lambda runtime
        command += ["--python-platform", spec.platform, "--python-version", spec.python_version]
    else:  # host_variant: this interpreter's version and platform
        command += ["--python", sys.executable]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        requirements.unlink(missing_ok=True)
    if result.returncode != 0:
        raise BundleError(
            f"uv pip install failed for the {spec.name} bundle:\n{result.stdout}\n{result.stderr}"
        )


def _copy_sources(spec: BundleSpec, target: Path) -> None:
    for source in _source_files(spec):
        destination = target / source.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def _trim(target: Path) -> None:
    """Drop tests, stubs, C/Cython sources and packaging leftovers; keep what imports need."""
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir():
            if path.name in _TRIM_DIRS or path.name.endswith("-stubs"):
                shutil.rmtree(path)
        elif path.parent.name.endswith(".dist-info"):
            if path.name not in _KEEP_DIST_INFO:
                path.unlink()
        elif path.suffix in _TRIM_SUFFIXES or path.suffix == ".pyc":
            path.unlink()
    for dist_info in target.glob("*.dist-info"):
        for sub in dist_info.iterdir():
            if sub.is_dir():
                shutil.rmtree(sub)


def _precompile(interpreter: Path, target: Path) -> None:
    # unchecked-hash: the read-only /var/task never changes, so skip the per-import source check.
    subprocess.run(
        [
            str(interpreter),
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ],
        check=True,
        capture_output=True,
    )


def main() -> None:
    from infra.constructs.lambda_function import RUNTIME_PYTHON_VERSION

    for spec in (service_bundle_spec(RUNTIME_PYTHON_VERSION), monitor_bundle_spec(RUNTIME_PYTHON_VERSION)):
        bundle = build_bundle(spec)
        print(
            f"{spec.name}: {bundle.path.relative_to(ROOT)} "
            f"unzipped {bundle.unzipped_bytes() / 2**20:.1f} MiB, "
            f"zipped {bundle.zipped_bytes() / 2**20:.1f} MiB, precompiled={bundle.precompiled}"
        )


if __name__ == "__main__":
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    main()
