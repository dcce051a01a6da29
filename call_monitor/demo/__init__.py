"""The demo and the tests' PBX: recorded Asterisk sessions played over a real AMI socket.

- :mod:`.pbx`: :class:`~call_monitor.demo.pbx.PlaybackServer`, a local AMI server that plays
  recordings (banner, Login, Ping, ``CoreShowChannels``), speaking AMI through the real
  framer's encoder and parser (``call_monitor.ami.framing``);
- :mod:`.recording`: the recordings read by that framer, chained, and rewritten into a
  loop's new rounds of calls;
- :mod:`.replies`: what a fake PBX answers, through the framing's encoder;
- :mod:`.runner`: ``call-monitor demo``, the recordings played into the real daemon;
- ``recordings/``: the recorded sessions and their ground truth (see its README).

Nothing below this package imports it: the product runs without it.
"""
