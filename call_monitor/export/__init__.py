"""The audit office's monthly export (issue 11): charter figures per department and staff
member, one row per call, the missed calls and their callbacks, the definitions in force;
as XLSX, CSV, JSON and a printable HTML report, each with a manifest.

It sits on the floor of ``alerts`` and ``metrics``: it reads the store and the charter's
definitions, and the web above may offer its files as downloads.
"""
