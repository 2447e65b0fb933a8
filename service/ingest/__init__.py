"""Car telemetry ingest: SQS batches of `TelemetryMessage` applied to the cars table."""
