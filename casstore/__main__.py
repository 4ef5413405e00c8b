"""``python -m casstore`` runs the ``cas`` command."""

from casstore.cli import main

main()
