"""The ``cas`` command: the only place that prints or exits."""
