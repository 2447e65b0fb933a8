"""The Lambda bundles the templates deploy: real arm64 builds that fit Lambda's limits."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from infra_support import Synthesized

from infra.bundling import LAMBDA_UNZIPPED_LIMIT, RUNTIME_PROVIDED, Bundle, build_bundle, host_variant

pytestmark = [pytest.mark.infra, pytest.mark.slow]

MIB = 2**20


@pytest.fixture(scope="module")
def bundles(synthesized: Synthesized) -> dict[str, Bundle]:
    built: dict[str, Bundle] = synthesized.built.bundles
    return built


@pytest.mark.parametrize("name", ["service", "monitor"])
def test_bundle_fits_lambda_limits(bundles: dict[str, Bundle], name: str, record_property: object) -> None:
    bundle = bundles[name]
    unzipped, zipped = bundle.unzipped_bytes(), bundle.zipped_bytes()
    figures = f"{name}: {unzipped / MIB:.1f} MiB unzipped, {zipped / MIB:.1f} MiB zipped"
    print(figures)
    record_property(f"{name}_bundle", figures)  # type: ignore[operator]
    assert unzipped < LAMBDA_UNZIPPED_LIMIT, figures
    # Deployed through the CDK asset bucket, so the 50 MB direct-upload limit does not apply; still,
    # a zipped size near it would mean the trimming stopped working.
    assert zipped < 80 * MIB, figures


def test_templates_deploy_the_measured_bundles(synthesized: Synthesized, bundles: dict[str, Bundle]) -> None:
    paths: set[str] = set()
    for manifest in synthesized.outdir.glob("*.assets.json"):
        for asset in json.loads(manifest.read_text())["files"].values():
            if asset["source"].get("packaging") == "zip":
                paths.add(str(Path(asset["source"]["path"]).resolve()))
    assert {str(b.path.resolve()) for b in bundles.values()} <= paths


def _files(bundle: Bundle) -> set[str]:
    return {str(p.relative_to(bundle.path)) for p in bundle.path.rglob("*") if p.is_file()}


def test_service_bundle_holds_the_handlers_and_arm64_wheels(
    synthesized: Synthesized, bundles: dict[str, Bundle]
) -> None:
    files = _files(bundles["service"])
    topo = synthesized.built.topology
    for spec in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay):
        module = spec.handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
        assert module in files, f"{spec.key}: {module} missing from the bundle"
    native = [f for f in files if f.startswith("pydantic_core/") and f.endswith(".so")]
    assert native
    assert all("cpython-314-aarch64-linux-gnu" in f for f in native), native
    assert any(f.startswith("aws_lambda_powertools/") for f in files)
    assert any(f.startswith("aws_xray_sdk/") for f in files)  # Tracer's extra


def test_monitor_bundle_holds_the_handler_and_scientific_stack(bundles: dict[str, Bundle]) -> None:
    files = _files(bundles["monitor"])
    assert "monitor/handler.py" in files
    assert "monitor/catalog.py" in files
    for package in ("numpy", "scipy", "sklearn"):
        assert any(f.startswith(f"{package}/") for f in files), package
    assert any(f.startswith("numpy/") and f.endswith("aarch64-linux-gnu.so") for f in files)


@pytest.mark.parametrize("name", ["service", "monitor"])
def test_bundles_are_trimmed(bundles: dict[str, Bundle], name: str) -> None:
    files = _files(bundles[name])
    top_level = {f.split("/", 1)[0].removesuffix(".py") for f in files}
    assert not top_level & {"boto3", "botocore", "s3transfer"}, "the runtime provides these"
    assert not {f for f in files if "/tests/" in f or f.endswith(".pyi")}
    assert not {f for f in files if "__pycache__" in f and not bundles[name].precompiled}
    provided = {d.split("-")[0].lower() for d in top_level if d.endswith(".dist-info")}
    assert not provided & RUNTIME_PROVIDED


_RUNTIME_IMPORTS = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}


def _imports(source: str) -> set[str]:
    """Top-level modules imported at run time (not those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", ["service", "monitor"])
def test_bundle_is_self_contained(bundles: dict[str, Bundle], name: str) -> None:
    """Every import of the project code resolves inside the bundle, the stdlib or the runtime's boto3."""
    bundle = bundles[name]
    available = {p.name.removesuffix(".py") for p in bundle.path.iterdir()}
    available |= set(sys.stdlib_module_names) | _RUNTIME_IMPORTS
    missing: dict[str, set[str]] = {}
    for package in bundle.spec.packages:
        for source in (bundle.path / package).rglob("*.py"):
            unresolved = _imports(source.read_text()) - available
            if unresolved:
                missing[str(source.relative_to(bundle.path))] = unresolved
    assert not missing, f"imports the {name} bundle cannot satisfy: {missing}"


_SMOKE_IMPORTS = {
    "service": ["service.api.handler", "service.ingest.handler", "service.relay.handler"],
    "monitor": ["monitor.handler", "numpy", "scipy.stats", "scipy.optimize", "sklearn.ensemble"],
}


@pytest.mark.parametrize("name", ["service", "monitor"])
def test_trimmed_bundle_imports_its_handlers(
    bundles: dict[str, Bundle], synthesized: Synthesized, tmp_path: Path, name: str
) -> None:
    """The bundle recipe, built for this machine, imports every handler with nothing else on sys.path.

    The arm64/cp314 bundle cannot run here; its host twin has the same requirements, the same removal
    of runtime-provided packages and the same trimming, so a trim that breaks an import fails here.
    Only boto3 and its closure are added, as the Lambda runtime provides them.
    """
    import boto3

    host = build_bundle(host_variant(bundles[name].spec), log=False)
    runtime = tmp_path / "runtime-provided"
    runtime.mkdir()
    site_packages = Path(boto3.__file__).parents[1]
    for module in _RUNTIME_IMPORTS:
        for candidate in (site_packages / module, site_packages / f"{module}.py"):
            if candidate.exists():
                (runtime / candidate.name).symlink_to(candidate)
    topo = synthesized.built.topology
    spec = topo.monitor if name == "monitor" else topo.cars_api
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **topo.function_environment(spec),
    }
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); "
        f"import {', '.join(_SMOKE_IMPORTS[name])}; "
        "assert all(p.startswith((sys.argv[1], sys.argv[2], sys.base_prefix)) "
        "for p in (m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))"
    )
    # -S: no site-packages, so nothing outside the bundle (and the runtime's boto3) can be imported.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(host.path), str(runtime)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("name", ["service", "monitor"])
def test_bundles_ship_only_runtime_code(bundles: dict[str, Bundle], name: str) -> None:
    """Given the bundle built from its explicit package list, then it holds the contract and its own
    runtime package, and none of the CDK app, the sandbox, the dashboard or the operator tools."""
    files = _files(bundles[name])
    top_level = {f.split("/", 1)[0] for f in files if f.startswith(("contract/", "service/", "monitor/"))}
    assert top_level == {"contract", name}
    workstation = {"infra", "sandbox", "dashboard", "ops", "benchmarks"}
    assert not {f for f in files if f.split("/", 1)[0] in workstation}
    own = {f for f in files if f.startswith(("contract/", f"{name}/"))}
    workstation_only = {f for f in own if f.endswith("__main__.py") or "/redrive" in f}
    assert not workstation_only, workstation_only
