"""``python -m bench``: run the benchmarks (see bench.runner)."""
import sys

from bench.runner import main

sys.exit(main())
