"""Parts of ``benchmarks/ingest.py``: the stream, the AMI server, and one module per variant.

Each variant module is imported only in the child process that runs it, so a child's peak
RSS holds that variant's imports and nothing else.
"""
