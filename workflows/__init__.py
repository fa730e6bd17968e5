"""Deterministic orchestration only: no I/O, clock, randomness or threads in here.

Everything with a side effect is an activity (activities/); workflows decide *when*.
"""

#: The modules that define workflows. The sandbox imports these afresh for every run; every
#: other module here is a plain helper passed through to it (runtime/plugin.py) — kept to
#: what the sandbox would allow by tests/test_workflow_purity.py, which reads their source.
DEFINITIONS = ("phase", "workstream", "rollback", "publish")
