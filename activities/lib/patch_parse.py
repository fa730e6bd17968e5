"""Reading a unified diff exactly: git's extended headers by hand, hunks with unidiff.

unidiff gives line counts and hunks but no path safety and a few misreadings (an empty file
being modified looks "added"; quoted names stay quoted). git's own headers (``new file mode``,
``index <old>..<new> <mode>``, ``rename from``) are the authority on what a section does, so
they are parsed here from the raw bytes, and the two readings are cross-checked.
Pure functions: no git, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from schemas.patch import FileChange, PatchProblem, PatchStats

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX = re.compile(rb"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: (\d{6}))?$")
_BINARY_LINE = re.compile(
    rb"^(?:literal \d+|delta \d+|[A-Za-z][0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]*|)$"
)
_HEADER_PREFIXES = (
    b"old mode ",
    b"new mode ",
    b"deleted file mode ",
    b"new file mode ",
    b"copy from ",
    b"copy to ",
    b"rename from ",
    b"rename to ",
    b"similarity index ",
    b"dissimilarity index ",
    b"index ",
)


@dataclass
class _Section:
    header_path: str | None = None
    old_path: str | None = None
    new_path: str | None = None
    rename_from: str | None = None
    rename_to: str | None = None
    new_file_mode: str | None = None
    deleted_file_mode: str | None = None
    old_mode: str | None = None
    new_mode: str | None = None
    old_blob: str | None = None
    new_blob: str | None = None
    index_mode: str | None = None
    binary: bool = False
    hunks: int = 0
    insertions: int = 0
    deletions: int = 0
    added_text: list[bytes] = field(default_factory=list)
    removed_digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    added_digest: hashlib._Hash = field(default_factory=hashlib.sha256)


@dataclass(frozen=True)
class ParsedPatch:
    stats: PatchStats
    problems: list[PatchProblem]
    symlink_targets: dict[str, str]
    fingerprint: str
    reverse_fingerprint: str


def parse_patch(data: bytes) -> ParsedPatch:
    sections, problems = _walk(data)
    problems += _cross_check(data, sections)
    files = [_file_change(s) for s in sections]
    stats = PatchStats(
        files=files,
        insertions=sum(f.insertions for f in files),
        deletions=sum(f.deletions for f in files),
        hunks=sum(f.hunks for f in files),
    )
    targets = {
        f.path: b"".join(s.added_text).decode("utf-8", "surrogateescape")
        for f, s in zip(files, sections, strict=True)
        if f.symlink and f.kind != "deleted"
    }
    forward, reverse = _fingerprints(sections)
    return ParsedPatch(stats, problems, targets, forward, reverse)


# -- the walk ----------------------------------------------------------------------------------


def _walk(data: bytes) -> tuple[list[_Section], list[PatchProblem]]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    sections: list[_Section] = []
    problems: list[PatchProblem] = []
    current: _Section | None = None
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i].removesuffix(b"\r")
        if line.startswith(b"diff --git "):
            current = _Section(header_path=_git_header_path(line[len(b"diff --git ") :]))
            sections.append(current)
            i += 1
            while i < n and lines[i].startswith(_HEADER_PREFIXES):
                _header(current, lines[i].removesuffix(b"\r"))
                i += 1
            continue
        if line.startswith(b"--- ") and i + 1 < n and lines[i + 1].startswith(b"+++ "):
            if current is None or current.old_path is not None or current.hunks:
                current = _Section()  # a plain `diff -u` section without a git header
                sections.append(current)
            current.old_path = _side_path(line[4:], b"a/")
            current.new_path = _side_path(lines[i + 1].removesuffix(b"\r")[4:], b"b/")
            i += 2
            continue
        if line.startswith(b"@@") and current is not None:
            i = _hunk(current, lines, i, problems)
            continue
        if line.startswith((b"GIT binary patch", b"Binary files ")) and current is not None:
            current.binary = True
            i += 1
            while (
                i < n
                and not lines[i].startswith(b"diff --git ")
                and _BINARY_LINE.match(lines[i].removesuffix(b"\r"))
            ):
                i += 1
            continue
        if current is not None:
            problems.append(
                PatchProblem(
                    code="garbage_between_files",
                    path=_display(current),
                    message=f"unexpected line {i + 1} after this file's changes: "
                    f"{line[:80].decode('utf-8', 'replace')!r}",
                )
            )
        # Text before the first section (a commit message, an email) is allowed.
        i += 1
    if not sections and data.strip():
        problems.append(PatchProblem(code="unparseable", message="no file sections found"))
    return sections, problems


def _hunk(section: _Section, lines: list[bytes], i: int, problems: list[PatchProblem]) -> int:
    match = _HUNK.match(lines[i])
    if match is None:
        problems.append(
            PatchProblem(
                code="unparseable",
                path=_display(section),
                message=f"bad hunk header on line {i + 1}",
            )
        )
        return i + 1
    old = int(match.group(2) if match.group(2) is not None else 1)
    new = int(match.group(4) if match.group(4) is not None else 1)
    section.hunks += 1
    i += 1
    symlink = _is_symlink(section)
    while i < len(lines) and (old > 0 or new > 0):
        body = lines[i]
        tag, text = body[:1], body[1:]
        if tag == b" " or body == b"":
            old, new = old - 1, new - 1
        elif tag == b"-":
            old -= 1
            section.deletions += 1
            section.removed_digest.update(text + b"\n")
        elif tag == b"+":
            new -= 1
            section.insertions += 1
            section.added_digest.update(text + b"\n")
            if symlink:
                section.added_text.append(text)
        elif tag != b"\\":
            break
        i += 1
    if old != 0 or new != 0:
        problems.append(
            PatchProblem(
                code="unparseable",
                path=_display(section),
                message="a hunk is shorter than its header says",
            )
        )
    while i < len(lines) and lines[i].startswith(b"\\"):
        i += 1
    return i


def _header(section: _Section, line: bytes) -> None:
    text = line.decode("utf-8", "surrogateescape")
    if line.startswith(b"index "):
        match = _INDEX.match(line)
        if match:
            section.old_blob = match.group(1).decode()
            section.new_blob = match.group(2).decode()
            section.index_mode = match.group(3).decode() if match.group(3) else None
    elif text.startswith("new file mode "):
        section.new_file_mode = text.rsplit(" ", 1)[1]
    elif text.startswith("deleted file mode "):
        section.deleted_file_mode = text.rsplit(" ", 1)[1]
    elif text.startswith("old mode "):
        section.old_mode = text.rsplit(" ", 1)[1]
    elif text.startswith("new mode "):
        section.new_mode = text.rsplit(" ", 1)[1]
    elif text.startswith("rename from "):
        section.rename_from = unquote(line[len(b"rename from ") :])
    elif text.startswith("rename to "):
        section.rename_to = unquote(line[len(b"rename to ") :])


# -- paths -------------------------------------------------------------------------------------

_ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


def unquote(raw: bytes) -> str:
    """git's C-style quoting ("a/\\303\\251.txt") back to the name, undecodable bytes kept."""
    raw = raw.rstrip(b"\r")
    if not raw.startswith(b'"'):
        return raw.decode("utf-8", "surrogateescape")
    out = bytearray()
    i = 1
    while i < len(raw) and raw[i : i + 1] != b'"':
        ch = raw[i : i + 1]
        if ch == b"\\" and i + 1 < len(raw):
            nxt = raw[i + 1 : i + 2]
            if nxt.isdigit():
                out.append(int(raw[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt[0]))
            i += 2
            continue
        out += ch
        i += 1
    return bytes(out).decode("utf-8", "surrogateescape")


def _side_path(raw: bytes, prefix: bytes) -> str | None:
    # git appends a TAB to ---/+++ names that contain a space; `diff -u` a TAB and a date.
    raw = raw.rstrip(b"\r")
    if not raw.startswith(b'"') and b"\t" in raw:
        raw = raw.split(b"\t", 1)[0]
    if raw == b"/dev/null":
        return None
    name = unquote(raw)
    return name[len(prefix) :] if name.startswith(prefix.decode()) else name


def _git_header_path(rest: bytes) -> str | None:
    """The path of ``diff --git a/P b/P`` when both sides are the same name (the only form
    git writes without rename headers); None when it cannot be told apart."""
    if rest.startswith(b'"'):
        end = rest.find(b'" ', 1)
        return _strip(unquote(rest[: end + 1]), "a/") if end > 0 else None
    length = (len(rest) - 5) // 2
    name = rest[2 : 2 + length]
    if rest[:2] == b"a/" and rest[2 + length :] == b" b/" + name:
        return name.decode("utf-8", "surrogateescape")
    return None


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def _is_symlink(s: _Section) -> bool:
    return "120000" in (s.new_file_mode, s.new_mode, s.index_mode, s.deleted_file_mode)


def _display(s: _Section) -> str | None:
    return s.rename_to or s.new_path or s.old_path or s.header_path


# -- summary -----------------------------------------------------------------------------------


def _file_change(s: _Section) -> FileChange:
    deleted = s.deleted_file_mode is not None or (s.new_path is None and s.old_path is not None)
    # `--- /dev/null` marks a new file in a plain diff; git also writes `new file mode`.
    # (An empty file being modified has `--- a/name`: that is not an addition.)
    added = s.new_file_mode is not None or (s.old_path is None and s.new_path is not None)
    if s.rename_from or s.rename_to:
        kind = "renamed"
    elif deleted:
        kind = "deleted"
    elif added:
        kind = "added"
    elif s.old_mode and s.new_mode and not s.hunks and not s.binary:
        kind = "mode_change"
    else:
        kind = "modified"
    path = s.rename_to or s.new_path or s.old_path or s.header_path or ""
    modes = (s.new_file_mode, s.deleted_file_mode, s.old_mode, s.new_mode, s.index_mode)
    return FileChange(
        path=path,
        old_path=s.rename_from if kind == "renamed" else None,
        kind=kind,  # type: ignore[arg-type]
        binary=s.binary,
        symlink=_is_symlink(s),
        gitlink="160000" in modes,
        old_mode=s.old_mode or s.deleted_file_mode or (s.index_mode if not added else None),
        new_mode=s.new_mode or s.new_file_mode or (s.index_mode if not deleted else None),
        old_blob=s.old_blob,
        new_blob=s.new_blob,
        insertions=s.insertions,
        deletions=s.deletions,
        hunks=s.hunks,
    )


def _fingerprints(sections: list[_Section]) -> tuple[str, str]:
    """Identity of what a patch does, and of its exact reverse: (path, before, after) per file,
    where before/after are blob ids when the diff has them, else digests of the lines."""
    forward, reverse = [], []
    for s in sections:
        before_path = s.rename_from or s.old_path or s.header_path
        after_path = s.rename_to or s.new_path or s.header_path
        before = s.old_blob or s.removed_digest.hexdigest()
        after = s.new_blob or s.added_digest.hexdigest()
        old_mode = s.old_mode or s.deleted_file_mode
        new_mode = s.new_mode or s.new_file_mode
        forward.append([before_path, after_path, before, after, old_mode, new_mode])
        reverse.append([after_path, before_path, after, before, new_mode, old_mode])
    return _digest(forward), _digest(reverse)


def _digest(items: list[list[str | None]]) -> str:
    return hashlib.sha256(json.dumps(sorted(items, key=str)).encode()).hexdigest()


def _cross_check(data: bytes, sections: list[_Section]) -> list[PatchProblem]:
    """unidiff must read the same number of files and the same line counts."""
    if not sections:
        return []
    try:
        patch_set = PatchSet.from_string(data, encoding="utf-8", errors="surrogateescape")
    except UnidiffParseError as exc:
        return [PatchProblem(code="unparseable", message=f"not a valid unified diff: {exc}")]
    ours = (len(sections), sum(s.insertions for s in sections), sum(s.deletions for s in sections))
    theirs = (len(patch_set), patch_set.added, patch_set.removed)
    if ours != theirs:
        return [
            PatchProblem(
                code="unparseable",
                message=f"ambiguous diff: read as {ours[0]} files +{ours[1]}/-{ours[2]} and as "
                f"{theirs[0]} files +{theirs[1]}/-{theirs[2]}",
            )
        ]
    return []
