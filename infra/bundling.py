"""Lambda bundles built locally, without Docker, and cached by content hash under ``build/bundles``.

A bundle is ``pip install --platform manylinux…_aarch64 --only-binary=:all: --target DIR`` of the
function's requirements (read from ``pyproject.toml``, so the versions are declared once), plus the
project packages the handler imports, trimmed of what a Lambda never loads. The directory name carries
a hash of everything that goes into it, so a synthesis rebuilds only when requirements or sources
change, and ``Code.from_asset`` reuses the hash instead of re-hashing a 170 MB tree.

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
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "bundles"
DEPS_DIR = ROOT / "build" / "deps"
# Bumped whenever the build recipe below changes, so cached bundles are rebuilt.
RECIPE_VERSION = "4"
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34); accept every manylinux tag up to it.
PLATFORMS = ("manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64")
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
    """A bundle could not be built; the message carries pip's output."""


@dataclass(frozen=True, kw_only=True)
class BundleSpec:
    """What goes into one deployment package."""

    name: str
    requirements: tuple[str, ...]
    packages: tuple[str, ...]  # project packages copied as source, e.g. ("service",)
    python_version: str  # of the Lambda runtime, e.g. "3.14"
    # Paths under `packages` that are not shipped: workstation entry points. Every `__main__.py` is
    # left out as well (a Lambda imports its handler; it never runs a package as a script).
    exclude: tuple[str, ...] = field(default=())
    platforms: tuple[str, ...] = PLATFORMS  # () = this machine's platform (see host_variant)
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


def _project_dependencies(extras: Iterable[str] = ()) -> tuple[str, ...]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements.extend(project["optional-dependencies"][extra])
    return tuple(r for r in requirements if _dist_name(r) not in RUNTIME_PROVIDED)


def _dist_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def service_bundle_spec(python_version: str) -> BundleSpec:
    """cars-api, telemetry-ingest and outbox-relay share one package: Powertools and pydantic."""
    return BundleSpec(
        name="service",
        requirements=_project_dependencies(),
        packages=("contract", "service"),
        exclude=("service/ingest/redrive",),  # the `python -m service.ingest.redrive` entry point
        python_version=python_version,
    )


def monitor_bundle_spec(python_version: str) -> BundleSpec:
    """The monitor adds numpy, scipy and scikit-learn (the ``monitor`` extra)."""
    return BundleSpec(
        name="monitor",
        requirements=_project_dependencies(["monitor"]),
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
        platforms=(),
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
    """A local interpreter of the runtime's version, to precompile bytecode with; None if absent."""
    found = shutil.which(f"python{python_version}")
    candidates = [Path(found)] if found else []
    candidates += sorted(Path("/root/.pyenv/versions").glob(f"{python_version}.*/bin/python"), reverse=True)
    for candidate in candidates:
        try:
            out = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out == python_version:
            return candidate
    return None


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
        *spec.platforms,
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
            f"[bundling] pip install for the {spec.name} bundle (python {spec.python_version}, arm64)",
            file=sys.stderr,
        )
    _pip_install(spec, staging)
    _remove_runtime_provided(staging)
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
    hard-linked copy of them plus the project sources, so a source edit costs a second, not a pip run.
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


def _pip_install(spec: BundleSpec, target: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--only-binary=:all:",
        "--target",
        str(target),
    ]
    if spec.platforms:  # cross-install for the Lambda runtime; none = this machine (host_variant)
        command += ["--implementation", "cp", "--python-version", spec.python_version]
    for platform in spec.platforms:
        command += ["--platform", platform]
    command += list(spec.requirements)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundleError(f"pip failed for the {spec.name} bundle:\n{result.stdout}\n{result.stderr}")


def _remove_runtime_provided(target: Path) -> None:
    for dist_info in target.glob("*.dist-info"):
        name = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
        if name not in RUNTIME_PROVIDED:
            continue
        record = dist_info / "RECORD"
        for line in record.read_text().splitlines() if record.exists() else []:
            relative = line.split(",", 1)[0]
            (target / relative).unlink(missing_ok=True)
        shutil.rmtree(dist_info, ignore_errors=True)
    for directory in sorted((p for p in target.iterdir() if p.is_dir()), reverse=True):
        _remove_empty_dirs(directory)
    shutil.rmtree(target / "bin", ignore_errors=True)


def _remove_empty_dirs(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir():
            _remove_empty_dirs(child)
    if not any(directory.iterdir()):
        directory.rmdir()


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
