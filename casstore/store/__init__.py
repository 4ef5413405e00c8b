"""The object store over a backend: objects, batches and packs, refs, the local
cache, and opening a store."""
