"""An agent runner shaped like archipelago's ``agents/runner``: started as
``python -m runner.main`` from ``examples/agents``."""
