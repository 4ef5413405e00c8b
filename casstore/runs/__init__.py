"""Recorded runs: reading records, provenance, redaction, diffs and replay."""
