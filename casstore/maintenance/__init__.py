"""Keeping a store healthy: garbage collection and fsck."""
