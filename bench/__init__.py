"""netring benchmarks: a C reference (bench/ref/) and a runner comparing netring with it in the same run.

Run ``bench/run`` (or ``python -m bench``) as root; ``--help`` lists the options. See
:mod:`bench.runner` for what is measured and how.
"""
