"""Deterministic orchestration only: no I/O, clock, randomness or threads in here.

Everything with a side effect is an activity (activities/); workflows decide *when*.
"""

#: The modules that define workflows; every other module here is a helper they use.
DEFINITIONS = ("phase", "workstream", "rollback", "publish")

#: Whether uet's workflows run in the SDK's sandbox: they do not. The sandbox keeps a run's
#: module state from another's by importing the workflow's module afresh for every run —
#: for a trivial workstream that was 14 ms of the worker's CPU, the largest single cost of
#: its child workflow (py-spy on bench/floor.py; ~15 ms per workstream with the sandbox off).
#: Its other guard, refusing the clock, I/O and randomness at run time, only ever covered
#: the four definition modules: the helpers were already passed through. What keeps every
#: module here deterministic is what it always was: tests/test_workflow_purity.py reads
#: their source for what the sandbox would refuse (and for module-level state), and the
#: recorded histories in tests/histories/ replay in CI.
SANDBOXED = False
