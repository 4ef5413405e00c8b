"""Test suites any backend or store author can subclass (as zarr's ``testing/store.py``),
and hypothesis strategies. Importing this needs the ``test`` extra (pytest, hypothesis)."""
