"""Parts of ``benchmarks/metrics.py``: the scraper it runs in a process of its own."""
