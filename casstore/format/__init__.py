"""Stored formats: digests, the key layout, object encoding, records, trees, pack
indexes and run manifests. Pure encoding and decoding: no I/O beyond streams.
Everything here is a contract documented in ``docs/FORMAT.md``."""
