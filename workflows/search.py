"""Search attributes uet sets so runs can be found in the Web UI and by `uet` commands.

They must be registered on the server (the embedded server and docker-compose do it).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

RUN_ID = SearchAttributeKey.for_keyword("UetRunId")
PHASE_ID = SearchAttributeKey.for_keyword("UetPhaseId")
STATUS = SearchAttributeKey.for_keyword("UetStatus")

ALL = (RUN_ID, PHASE_ID, STATUS)
