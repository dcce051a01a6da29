"""Calls: the pure correlator that turns AMI events into call records."""
