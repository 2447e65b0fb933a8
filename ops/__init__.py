"""Operator tools: code that runs on a workstation or in CI against Fleetscope, never in a Lambda.

- `ops.detect`: offline detection over CSV files (`python -m monitor detect`), the monitor's
  detectors and alert rules exactly as deployed;
- `ops.redrive`: inspect and redrive the telemetry dead-letter queue (`python -m service.ingest.redrive`);
- `ops.synthetic`: generated serverless incident series for tests and benchmarks;
- `ops.fakes`: in-memory stand-ins for CloudWatch, the incident store and SNS (tests, benchmarks);
- `ops.docs_links`: the documentation site's MkDocs hook that checks and renders links to repository files.

The Lambda bundles are built from explicit package lists (`infra.bundling`) that do not include this
package; the two documented `python -m` commands keep working through `__main__` modules, which no
bundle ships either.
"""
