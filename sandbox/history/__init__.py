"""The sandbox's metric history: `calibration` measures the live latencies, `backfill` writes 14 days."""
