"""call-monitor: checks a district office's telephone service charter on live Asterisk calls."""

__version__ = "0.1.0"
