"""Deterministic orchestration only: no I/O, clock, randomness or threads in here.

Everything with a side effect is an activity (activities/); workflows decide *when*.
"""
