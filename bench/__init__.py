"""Benchmarks of the event platform, side by side with the database's own limit and a peer.

Run them all with ``make bench`` (``python -m bench.run``); see BENCHMARKS.md.
"""
