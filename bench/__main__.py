"""``python -m bench [--quick] [--repeats R] [--only SECTION] [--json PATH]`` (same as ``spacetime bench``)."""

import sys

from bench.suite import main

sys.exit(main())
