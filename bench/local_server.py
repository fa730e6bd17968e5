"""The in-memory dev server the benchmarks run on: uet's converter, search attributes and
task-queue settings (runtime/devserver.py DYNAMIC_CONFIG), as its embedded server has them."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from runtime.converter import DATA_CONVERTER
from runtime.devserver import dynamic_config_args
from runtime.settings import temporal_binary
from workflows import search


async def start() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=DATA_CONVERTER,
        search_attributes=list(search.ALL),
        dev_server_log_level="error",
        dev_server_extra_args=dynamic_config_args(),
    )
