"""Reading a phase file (YAML or JSON) into a checked PhaseSpec, with file:line for each problem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore
from runtime.errors import UserError
from schemas.base import ArtifactRef
from schemas.spec import PhaseSpec
from schemas.spec_check import PathPart, Problem, check_spec


@dataclass(frozen=True)
class LoadedSpec:
    path: Path
    spec: PhaseSpec

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_spec(path: str | Path) -> LoadedSpec:
    """The checked spec, or a UserError listing every problem (``file:line: $.path: message``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path}: no such file; pass the path of a phase file (.yaml or .json)"
        ) from None
    except IsADirectoryError:
        raise UserError(
            f"{path}: is a directory; pass the path of a phase file (.yaml or .json)"
        ) from None
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read the phase file ({exc.strerror or exc}); check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UserError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            "save the phase file as UTF-8"
        ) from None
    data, locate = _parse(path, text)
    result = check_spec(data)
    problems = list(result.problems)
    if result.spec is not None:
        problems += _file_problems(path.parent, result.spec)
    if problems:
        raise UserError(*(_format(path, p, locate) for p in problems))
    assert result.spec is not None
    return LoadedSpec(path.resolve(), result.spec)


def _file_problems(directory: Path, spec: PhaseSpec) -> list[Problem]:
    problems = []
    for i, ws in enumerate(spec.workstreams):
        patch_file = ws.execution_request.patch_file
        uses_patch = ws.execution_request.tool_id == "patch"
        if uses_patch and patch_file and not (directory / patch_file).is_file():
            problems.append(
                Problem(
                    ("workstreams", i, "execution_request", "patch_file"),
                    f"patch file {patch_file!r} not found (relative to {directory})",
                )
            )
    return problems


def _format(path: Path, problem: Problem, locate: _Locator) -> str:
    line = locate(problem.path, problem.key)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {problem.json_path}: {problem.message}"


class _Locator:
    """Maps a JSON path to the 1-based line it starts on in the source file."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def __call__(self, path: tuple[PathPart, ...], key: str | None = None) -> int | None:
        """``key``: a key of the mapping at ``path`` (an unknown field): its own line."""
        node = self.root
        if node is None:
            return None
        for part in path:
            child = _child(node, part)
            if child is None:
                return node.start_mark.line + 1
            node = child
        if key is not None and isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.value == key:
                    return int(key_node.start_mark.line) + 1
        return node.start_mark.line + 1


def _child(node: yaml.Node, part: PathPart) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item
    return None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a repeated key silently overwriting is a typo)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _parse(path: Path, text: str) -> tuple[Any, _Locator]:
    data: Any
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        root = _compose_quietly(text)  # JSON is (nearly always) YAML: reuse its line marks
    else:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.load(text, Loader=_StrictLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise UserError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        raise UserError(f"{path}: the phase file is empty; it needs phase_id and workstreams")
    if not isinstance(data, dict):
        raise UserError(
            f"{path}:1: $: a phase file is a mapping with phase_id and workstreams, "
            f"not a {type(data).__name__}"
        )
    return data, _Locator(root)


def _compose_quietly(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def import_patch_files(loaded: LoadedSpec, store: ArtifactStore) -> dict[str, ArtifactRef]:
    """Ready patches travel as artifact references, so workers never read the spec's folder."""
    refs = {}
    for ws in loaded.spec.workstreams:
        if ws.execution_request.tool_id == "patch" and ws.execution_request.patch_file:
            source = loaded.directory / ws.execution_request.patch_file
            try:
                refs[ws.workstream_id] = store.put_file(source, "text/x-diff")
            except ApplicationError as exc:  # DiskFull
                raise UserError(f"{ws.workstream_id}: patch_file {source}: {exc.message}") from None
            except OSError as exc:
                raise UserError(
                    f"{ws.workstream_id}: cannot store patch_file {source} in {store.location} "
                    f"({exc.strerror or exc}); check UET_HOME and the file's permissions"
                ) from None
    return refs
