"""A converted phase as YAML people read: short collections inline, long text as blocks, and
the report of what did not convert as a comment at the top."""

from __future__ import annotations

import json
from typing import Any

import yaml

from runtime.legacy.model import Conversion

#: Flow style (``[a, b]``, ``{k: v}``) for collections of plain values up to this many characters.
_FLOW_WIDTH = 80


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key (as in the README), multi-line strings as ``|``
    blocks, short collections of plain values on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | bool) or (isinstance(value, str) and "\n" not in value)


def _short(data: Any) -> bool:
    return len(json.dumps(data, ensure_ascii=False)) <= _FLOW_WIDTH


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(_plain(v) for v in data) and _short(data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    def flat(value: Any) -> bool:
        return _plain(value) or (isinstance(value, list) and all(_plain(v) for v in value))

    flow = bool(data) and all(flat(v) for v in data.values()) and _short(data)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


class _Block(dict[str, Any]):
    """A mapping always written in block style (the document and each workstream)."""


def _represent_block(dumper: yaml.SafeDumper, data: _Block) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


_Dumper.add_representer(_Block, _represent_block)
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def _dump(data: Any) -> str:
    return yaml.dump(
        # No line width: a command or a prompt is never folded across lines.
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1 << 16,
        indent=2,
    )


def render_yaml(conversion: Conversion, sources: list[str]) -> str:
    """The phase file: a header naming the legacy files and every field that did not convert,
    then the spec, each workstream under a comment saying where it came from."""
    lines = ["# Converted by `uet convert` from legacy workstream files:"]
    lines += [f"#   {source}" for source in sources]
    if conversion.unmapped:
        lines.append("# Not converted as written (uet convert printed these too):")
        lines += [f"#   {note.line()}" for note in conversion.unmapped]
    else:
        lines.append("# Every legacy field was converted.")
    lines.append("")
    phase = conversion.phase
    head = _Block((key, value) for key, value in phase.items() if key != "workstreams")
    text = "\n".join(lines) + "\n" + _dump(head) + "\nworkstreams:\n"
    blocks = []
    for origin, ws in zip(conversion.origins, phase["workstreams"], strict=True):
        body = "".join(
            f"  {line}" if line.strip() else line for line in _dump([_Block(ws)]).splitlines(True)
        )
        blocks.append(f"  # from {origin}\n{body}")
    text += "\n".join(blocks)
    if yaml.safe_load(text) != phase:  # the comments and indentation must not change the data
        raise AssertionError("uet convert: the YAML does not read back as the converted spec")
    return text
