"""Asterisk Manager Interface: pure framing, and the asyncio client at the edge."""
