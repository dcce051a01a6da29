"""Parts of ``benchmarks/soak.py`` and ``benchmarks/metrics.py``: the generated traffic, the
staff directory it rings, the AMI server that streams it, and the daemon under test.

Each child module is imported only in the process that runs it.
"""
