"""Snapshots: reading archives and folders, ingesting them as trees, writing trees
out again (checkout), and comparing trees. Depends on a small reader/writer
protocol, not on the store."""
