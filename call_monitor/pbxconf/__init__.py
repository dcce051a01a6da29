"""An Asterisk configuration directory read the way Asterisk reads it, and checked for what
the monitor needs (``call-monitor check-asterisk DIR``).

- ``syntax``: Asterisk's config file syntax (pure: text in, sections out).
- ``check``: what is wrong for the monitor, each problem with its file and line, in Korean
  or English (pure: parsed files and the monitor's settings in, problems out).
- ``files``: the directory: which files, ``#include``, reading bytes.
"""
