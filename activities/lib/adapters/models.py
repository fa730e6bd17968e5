"""What uet knows about models: context window and price per million tokens.

The defaults are a starting point, not a source of truth: prices change. A worker reads
overrides from the YAML file named by ``UET_MODELS_FILE``::

    gpt-5-codex: {context_tokens: 400000, input_usd_per_mtok: 1.25, output_usd_per_mtok: 10}

Tools that report dollars themselves (aider, Claude Code) are believed; the table prices the
ones that report only tokens (Codex), and bounds every prompt before a doomed, paid-for call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import yaml
from temporalio.exceptions import ApplicationError

from schemas.tools import ToolUsage


@dataclass(frozen=True)
class ModelInfo:
    context_tokens: int
    input_usd_per_mtok: float | None = None
    cached_input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None


DEFAULT_MODEL = ModelInfo(context_tokens=128_000)

#: Keys match a model name exactly, or as a prefix ("claude-sonnet-4" matches
#: "claude-sonnet-4-5-20250929"); the longest match wins.
DEFAULTS: dict[str, ModelInfo] = {
    "claude-opus-4": ModelInfo(200_000, 15.0, 1.5, 75.0),
    "claude-sonnet-4": ModelInfo(200_000, 3.0, 0.3, 15.0),
    "claude-haiku-4": ModelInfo(200_000, 1.0, 0.1, 5.0),
    "gpt-5": ModelInfo(400_000, 1.25, 0.125, 10.0),
    "gpt-5-codex": ModelInfo(400_000, 1.25, 0.125, 10.0),
    "gpt-4.1": ModelInfo(1_000_000, 2.0, 0.5, 8.0),
    "o4-mini": ModelInfo(200_000, 1.1, 0.275, 4.4),
}

#: What each tool uses when the spec names no model (for the context check and pricing).
TOOL_DEFAULT_MODEL = {"claude": "claude-sonnet-4", "codex": "gpt-5-codex", "aider": "gpt-4.1"}


@cache
def _table(path: str | None) -> dict[str, ModelInfo]:
    table = dict(DEFAULTS)
    if not path:
        return table
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        for name, fields in data.items():
            table[str(name)] = replace(table.get(str(name), DEFAULT_MODEL), **fields)
    except (OSError, yaml.YAMLError, TypeError, AttributeError) as exc:
        raise ApplicationError(
            f"UET_MODELS_FILE {path}: {exc}", type="BadModelsFile", non_retryable=True
        ) from None
    return table


def model_info(model: str | None, tool_id: str) -> tuple[str, ModelInfo]:
    name = model or TOOL_DEFAULT_MODEL.get(tool_id, "")
    table = _table(os.environ.get("UET_MODELS_FILE"))
    matches = [key for key in table if name == key or name.startswith(key)]
    return name, table[max(matches, key=len)] if matches else DEFAULT_MODEL


def priced(usage: ToolUsage, tool_id: str) -> ToolUsage:
    """Fill in the cost from the table when the tool reported tokens but no dollars."""
    if usage.cost_usd is not None:
        return usage
    _, info = model_info(usage.model, tool_id)
    if info.input_usd_per_mtok is None or info.output_usd_per_mtok is None:
        return usage
    cached_rate = info.cached_input_usd_per_mtok or info.input_usd_per_mtok
    fresh = max(usage.input_tokens - usage.cached_tokens, 0)
    cost = (
        fresh * info.input_usd_per_mtok
        + usage.cached_tokens * cached_rate
        + usage.output_tokens * info.output_usd_per_mtok
    ) / 1e6
    return usage.model_copy(update={"cost_usd": round(cost, 6), "cost_source": "price_table"})
