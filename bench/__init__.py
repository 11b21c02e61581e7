"""Space Time's benchmarks: a latency-modelled OpenAI-compatible server and the `spacetime bench` suite.

Not part of the installed package (it is not in the wheel): run it from a checkout, as ``spacetime bench`` or
``python -m bench``. See docs/benchmarks.md.
"""

SPACETIME_BENCH = True
"""Marker: ``spacetime bench`` checks it to tell this package from an unrelated ``bench`` module."""
