"""Connecting to Temporal with Temporal's own configuration, and with uet's data converter."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, RPCStatusCode

from runtime.converter import DATA_CONVERTER
from runtime.errors import ExitCode, UserError
from runtime.settings import DEFAULT_ADDRESS, is_loopback
from schemas.refs import workflow_id
from schemas.run import RunRecord
from workflows.phase import PhaseWorkflow


@dataclass(frozen=True)
class Target:
    address: str
    namespace: str
    connect_config: dict[str, Any]


def target_from_env() -> Target:
    """``TEMPORAL_*`` variables and the profile file; uet's default is the local dev server."""
    try:
        profile = ClientConfigProfile.load()
    except Exception as exc:  # a broken config file is a user error, not a crash
        raise UserError(f"Temporal client config: {exc}") from None
    config: dict[str, Any] = dict(profile.to_client_connect_config())
    address = config.pop("target_host", None) or DEFAULT_ADDRESS
    namespace = config.pop("namespace", None) or "default"
    return Target(address, namespace, config)


async def connect(target: Target, timeout_s: float = 5.0) -> Client:
    return await asyncio.wait_for(
        Client.connect(
            target.address,
            namespace=target.namespace,
            data_converter=DATA_CONVERTER,
            **target.connect_config,
        ),
        timeout=timeout_s,
    )


async def check_namespace(client: Client) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UserError(
                f"Temporal namespace {client.namespace!r} does not exist on this server; "
                "set TEMPORAL_NAMESPACE to an existing one or create it "
                f"(temporal operator namespace create --namespace {client.namespace})",
                exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
            ) from None
        if exc.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
            return  # a restricted client may not describe namespaces; the real calls will tell
        raise UserError(
            f"Temporal namespace {client.namespace!r} cannot be checked ({exc.message}); "
            "check TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None


async def connect_existing(target: Target) -> Client:
    """A client of a server that must be up already (everything but ``uet run``)."""
    try:
        client = await connect(target)
    except Exception:
        how = (
            "start the embedded server with `uet server start`"
            if is_loopback(target.address)
            else "check TEMPORAL_ADDRESS and that the server there is up"
        )
        raise UserError(
            f"Temporal at {target.address} is unreachable; {how}",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    await check_namespace(client)
    return client


async def client() -> Client:
    """A client of the server the environment names (which must be up already)."""
    return await connect_existing(target_from_env())


def phase_handle(client: Client, run_id: str) -> WorkflowHandle[Any, RunRecord]:
    """A run's phase workflow: the latest execution of ``uet-<run_id>``."""
    return client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))


async def ended(handle: WorkflowHandle[Any, RunRecord]) -> str | None:
    """How the phase workflow ended, or None while it runs."""
    try:
        description = await handle.describe()
    except RPCError as exc:
        raise UserError(
            f"run {handle.id.removeprefix('uet-')}: {exc.message}; `uet runs` lists the runs"
        ) from None
    if description.status == WorkflowExecutionStatus.RUNNING:
        return None
    return description.status.name.lower() if description.status else "closed"


async def until_closed(handle: WorkflowHandle[Any, RunRecord]) -> None:
    while await ended(handle) is None:
        await asyncio.sleep(0.5)
