"""The repository `uet init` inspects: the files git tracks (a checkout holds nothing else),
read from the work tree, and the gitignored local files a checkout would lack."""

from __future__ import annotations

import configparser
import fnmatch
import json
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import UserError

#: Untracked local files a checkout may need (``workspace.include``), when git ignores them.
LOCAL_FILES: tuple[str, ...] = (".env", ".env.*", "config/local.*", "config/*.local.*")
#: Look-alikes that are templates, not settings (they belong in git).
NOT_LOCAL: tuple[str, ...] = ("*.example", "*.sample", "*.template", "*.dist")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


@dataclass
class RepoFiles:
    root: Path
    tracked: frozenset[str]
    #: Problems reading a file (invalid TOML, JSON, INI): said once in the report.
    unreadable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: str) -> RepoFiles:
        path = Path(directory).expanduser()
        if not path.exists():
            raise UserError(f"--repo {directory}: no such directory; pass a git repository")
        if not path.is_dir():
            raise UserError(
                f"--repo {directory}: is a file, not a directory; pass a git repository"
            )
        top = _git(path, "rev-parse", "--show-toplevel")
        if top.returncode != 0 or not top.stdout.strip():
            raise UserError(
                f"--repo {directory}: not a git repository (or a bare one); `uet init` reads "
                "what git tracks, so run it in a work tree (or `git init` and commit first)"
            )
        root = Path(top.stdout.decode().strip()).resolve()
        listed = _git(root, "ls-files", "-z")
        if listed.returncode != 0:
            raise UserError(f"--repo {directory}: git ls-files failed: {listed.stderr.decode()}")
        names = frozenset(n for n in listed.stdout.decode("utf-8", "replace").split("\0") if n)
        return cls(root, names)

    # -- which files -----------------------------------------------------------------------

    def has(self, path: str) -> bool:
        return path in self.tracked

    def first(self, *paths: str) -> str | None:
        return next((p for p in paths if p in self.tracked), None)

    def glob(self, pattern: str) -> list[str]:
        """Tracked paths matching ``pattern``; ``*`` stays within one path segment."""
        depth = pattern.count("/")
        return sorted(
            p for p in self.tracked if p.count("/") == depth and fnmatch.fnmatch(p, pattern)
        )

    def anywhere(self, *patterns: str) -> list[str]:
        """Tracked paths whose file name matches one of ``patterns``, at any depth."""
        return sorted(
            p
            for p in self.tracked
            if any(fnmatch.fnmatch(p.rsplit("/", 1)[-1], n) for n in patterns)
        )

    # -- contents ---------------------------------------------------------------------------

    def text(self, path: str) -> str | None:
        try:
            return (self.root / path).read_text("utf-8", errors="replace")
        except OSError:
            return None

    def toml(self, path: str) -> dict[str, Any] | None:
        text = self.text(path) if self.has(path) else None
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.unreadable[path] = f"not valid TOML ({exc})"
            return None

    def json(self, path: str) -> dict[str, Any] | None:
        text = self.text(path) if self.has(path) else None
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.unreadable[path] = f"not valid JSON (line {exc.lineno}: {exc.msg})"
            return None
        if not isinstance(data, dict):
            self.unreadable[path] = "not a JSON object"
            return None
        return data

    def ini(self, path: str) -> configparser.RawConfigParser | None:
        text = self.text(path) if self.has(path) else None
        if text is None:
            return None
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(text, source=path)
        except configparser.Error as exc:
            self.unreadable[path] = f"not a readable INI file ({str(exc).splitlines()[0]})"
            return None
        return parser

    # -- local files ------------------------------------------------------------------------

    def ignored_local_files(self) -> list[str]:
        """Gitignored files in the work tree that look like local settings (``.env``,
        ``config/local.*``): a fresh checkout would not have them."""
        listed = _git(
            self.root,
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        )
        if listed.returncode != 0:
            return []
        found: set[str] = set()
        for entry in listed.stdout.decode("utf-8", "replace").split("\0"):
            if not entry:
                continue
            if entry.endswith("/"):  # a whole ignored directory: look inside it for local files
                folder = entry.rstrip("/")
                for pattern in LOCAL_FILES:
                    if pattern.rsplit("/", 1)[0] == folder:
                        found.update(
                            p.relative_to(self.root).as_posix()
                            for p in (self.root / folder).glob(pattern.rsplit("/", 1)[1])
                        )
                continue
            found.add(entry)
        return sorted(p for p in found if _local(p) and self._plain_file(p))

    def _plain_file(self, path: str) -> bool:
        full = self.root / path
        return full.is_file() and not full.is_symlink()


def _local(path: str) -> bool:
    depth = path.count("/")
    name = path.rsplit("/", 1)[-1]
    return any(
        pattern.count("/") == depth and fnmatch.fnmatch(path, pattern) for pattern in LOCAL_FILES
    ) and not any(fnmatch.fnmatch(name, n) for n in NOT_LOCAL)
