"""`python -m service.ingest.redrive` (the documented command); the tool itself is `ops.redrive`."""
