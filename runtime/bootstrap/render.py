"""The starter phase as YAML people read: the bootstrap report as its header, short
collections on one line, commands never folded."""

from __future__ import annotations

import json
from typing import Any

import yaml

from runtime.bootstrap.model import Profile

_FLOW_WIDTH = 80


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, short collections of plain values inline."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | bool) or (isinstance(value, str) and "\n" not in value)


def _short(data: Any) -> bool:
    return len(json.dumps(data, ensure_ascii=False)) <= _FLOW_WIDTH


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    # Commands (strings with spaces) one per line; short lists of names inline.
    words = all(not isinstance(v, str) or " " not in v for v in data)
    flow = bool(data) and all(_plain(v) for v in data) and _short(data) and words
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    def flat(value: Any) -> bool:
        return _plain(value) or (isinstance(value, list) and all(_plain(v) for v in value))

    flow = bool(data) and all(flat(v) for v in data.values()) and _short(data)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def _block(data: dict[str, Any]) -> str:
    """Top-level keys in block style, a blank line before each collection."""
    parts: list[str] = []
    for key, value in data.items():
        node = {key: value}
        text = yaml.dump(
            node, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16, indent=2
        )
        if text.startswith("{"):  # a short mapping in flow style: write it as a block
            text = yaml.dump(
                node,
                Dumper=yaml.SafeDumper,
                sort_keys=False,
                allow_unicode=True,
                width=1 << 16,
                default_flow_style=False,
            )
        if isinstance(value, dict | list) and parts:
            parts.append("\n")
        parts.append(text)
    return "".join(parts)


def render_yaml(profile: Profile, phase: dict[str, Any]) -> str:
    languages = ", ".join(profile.languages) or "no language recognised"
    lines = [
        f"# Starter phase written by `uet init` for {profile.root.name} ({languages}).",
        "# Check the workspace setup and the gates, then replace the example workstream.",
        "# What uet init found, what it chose and why, and what it could not decide:",
    ]
    lines += [f"#   {note.line()}" for note in profile.notes]
    return "\n".join(lines) + "\n\n" + _block(phase)
