"""`python -m benchmarks [bench_name ...] [-- options]` runs every benchmark module, or the named ones.

Options after the names go to the benchmark itself, so they need exactly one name:
`python -m benchmarks bench_service_api --iterations 50`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = [arg.removesuffix(".py") for arg in argv if arg.startswith("bench_")]
    options = [arg for arg in argv if not arg.startswith("bench_") and arg != "--"]
    available = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    unknown = [name for name in names if name not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr
        )
        return 2
    if options and len(names) != 1:
        print("options go to one benchmark: python -m benchmarks bench_NAME [options]", file=sys.stderr)
        return 2
    for name in names or available:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n=== {module.__name__} ===", flush=True)
        started = time.perf_counter()
        module.main(options)
        print(f"--- {module.__name__} took {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
