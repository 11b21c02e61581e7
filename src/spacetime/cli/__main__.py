"""``python -m spacetime.cli`` (as ``python -m spacetime``)."""

from spacetime.cli import main

main()
