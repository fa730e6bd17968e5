"""Secrets in a patch: the worker's own secret values and well-known credential formats.

An AI tool necessarily sees its own API key, and a prompt can talk it into writing one into a
file; once committed, a secret is in the history for good. So the lines a patch ADDS are
scanned before git sees them for

- the values of the worker's secret-named environment variables (``ANTHROPIC_API_KEY``,
  ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, …): a substring match, nothing to guess; and
- credentials that announce themselves by their format (an AWS access key id, a PEM private
  key header, a GitHub or Slack token, …), found by the format-based plugins of the maintained
  ``detect-secrets`` library. Its entropy and keyword plugins are left out on purpose: they
  flag ordinary code (hashes, test data, ``password = input()``), and a false positive here
  fails a workstream.

A hit is reported with its value masked (:func:`mask`) and the line's :func:`line_sha256`, so
a person can allow-list a false positive (``patch_policy.secret_allowlist``) without the report
ever carrying the secret. Pure functions: the environment is passed in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import BasePlugin
from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from schemas.spec import SecretAllow

#: Names of environment variables whose values are secrets. ``AUTH`` but not ``AUTHOR``:
#: ``GIT_AUTHOR_NAME`` holds a name that belongs in a changelog, not a credential.
SECRET_ENV_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH(?!OR)", re.IGNORECASE
)
#: Shorter values ("1", "true", "prod") would match ordinary text.
MIN_SECRET_LENGTH = 8

#: detect-secrets plugins that recognise a credential by its own format (a fixed prefix, a
#: fixed shape). Left out: the entropy and keyword plugins, BasicAuth (every example URL with
#: ``user:pass@``), Artifactory (matches capitalised words), IP addresses, and the IBM,
#: Cloudant and SoftLayer plugins, which key on variable names. A name the installed version
#: does not have is skipped.
FORMAT_PLUGINS: tuple[str, ...] = (
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)


@dataclass(frozen=True)
class AddedLine:
    """One line a patch adds. ``line_no`` is its number in the new file; when the diff cannot
    be read file by file, ``path`` is None and ``line_no`` counts lines of the diff."""

    path: str | None
    line_no: int
    text: str


@dataclass(frozen=True)
class SecretHit:
    """A secret a patch adds: on a line (``line_no`` ≥ 1) or in a file's name (0)."""

    path: str | None
    line_no: int
    what: str  # "the value of $ANTHROPIC_API_KEY", "AWS Access Key", …
    masked: str
    line_sha256: str

    def describe(self) -> str:
        """The problem's message: where, what (masked), and the key that allow-lists the line
        if it is no secret after all."""
        if self.line_no == 0:
            return f"the file's name holds {self.what} ({self.masked})"
        where = f"line {self.line_no}" if self.path else f"line {self.line_no} of the diff"
        return (
            f"{where}: {self.what} ({self.masked}); line_sha256 {self.line_sha256} "
            "(for patch_policy.secret_allowlist, if this is no secret)"
        )


def mask(value: str) -> str:
    """What a report may show of a secret: a few leading characters (at most a quarter of
    it) and its length, e.g. ``sk-a…[108 chars]``; enough to recognise it, never to use it."""
    shown = value[: min(4, len(value) // 4)]
    shown = shown if shown.isprintable() else ""
    return f"{shown}…[{len(value)} chars]"


def line_sha256(text: str) -> str:
    """The allow-list key of a line: sha256 of its text (without the diff's ``+`` and the line
    ending), so a line that moves keeps its key and a line that changes loses it."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def secret_env_values(env: Mapping[str, str]) -> dict[str, str]:
    """value → the name it is known by, for secret-named variables (longest value first, so
    a secret that contains another is reported as itself)."""
    found: dict[str, str] = {}
    for name, value in sorted(env.items()):
        if SECRET_ENV_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH:
            found.setdefault(value, name)
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


def added_lines(data: bytes, paths: Sequence[str] = ()) -> Iterator[AddedLine]:
    """The lines a unified diff adds, with their new-file line numbers (read by unidiff).

    ``paths`` are the files as patch_parse read them (the authority on names: unidiff keeps
    git's quoting); they are used when they name as many files as unidiff found. A diff
    unidiff cannot read yields every ``+`` line with its number in the diff instead."""
    try:
        patch_set = PatchSet.from_string(data, encoding="utf-8", errors="surrogateescape")
    except UnidiffParseError:
        yield from _raw_added_lines(data)
        return
    names = list(paths) if len(paths) == len(patch_set) else [f.path for f in patch_set]
    for name, patched in zip(names, patch_set, strict=True):
        for hunk in patched:
            for line in hunk:
                if line.is_added and line.target_line_no is not None:
                    yield AddedLine(name, line.target_line_no, _strip_eol(line.value))


def scan(
    lines: Iterable[AddedLine],
    env: Mapping[str, str],
    allowlist: Iterable[SecretAllow] = (),
) -> list[SecretHit]:
    """Every secret the lines add, except on allow-listed lines (path and line hash)."""
    values = secret_env_values(env)
    allowed = {(a.path, a.line_sha256) for a in allowlist}
    hits: list[SecretHit] = []
    for path, group in _by_file(lines):
        # One pass over the file's added text first: almost every patch has no secret, and
        # no pattern of FORMAT_PLUGINS anchors on a line's start or end, so whatever a single
        # line matches, the joined text matches too.
        joined = "\n".join(line.text for line in group)
        if not any(v in joined for v in values) and not format_secrets(joined):
            continue
        for line in group:
            found = _line_secrets(line.text, values)
            if not found:
                continue
            digest = line_sha256(line.text)
            if (path, digest) in allowed:
                continue
            hits += [SecretHit(path, line.line_no, what, mask(v), digest) for what, v in found]
    return hits


def scan_names(paths: Iterable[str], env: Mapping[str, str]) -> list[SecretHit]:
    """Secrets in the names of the files a patch writes (``touch "$API_KEY"``): no line to
    allow-list, so never allowed. The hit's path is the name itself: mask it when reporting."""
    values = secret_env_values(env)
    return [
        SecretHit(path, 0, what, mask(value), "")
        for path in paths
        for what, value in _line_secrets(path, values)
    ]


def format_secrets(text: str) -> list[tuple[str, str]]:
    """(kind, value) for each well-known credential format in ``text``. The plugins'
    ``analyze_string`` is pure (no settings, no verification request to the issuer)."""
    return [
        (plugin.secret_type, value)
        for plugin in _plugins()
        for value in plugin.analyze_string(text)
        if value
    ]


def masked_text(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by its mask (longest first)."""
    for value in sorted(set(values), key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, mask(value))
    return text


def _line_secrets(text: str, values: Mapping[str, str]) -> list[tuple[str, str]]:
    found = [(f"the value of ${name}", v) for v, name in values.items() if v in text]
    seen = {v for _, v in found}
    for kind, value in format_secrets(text):
        if value not in seen and not any(value in v for v in seen):
            seen.add(value)
            found.append((kind, value))
    return found


def _by_file(lines: Iterable[AddedLine]) -> Iterator[tuple[str | None, list[AddedLine]]]:
    group: list[AddedLine] = []
    for line in lines:
        if group and line.path != group[0].path:
            yield group[0].path, group
            group = []
        group.append(line)
    if group:
        yield group[0].path, group


def _raw_added_lines(data: bytes) -> Iterator[AddedLine]:
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("+") and not line.startswith("+++ "):
            yield AddedLine(None, number, _strip_eol(line[1:]))


def _strip_eol(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


@cache
def _plugins() -> tuple[BasePlugin, ...]:
    known: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    classes = {cls.__name__: cls for cls in known.values()}
    return tuple(classes[name]() for name in FORMAT_PLUGINS if name in classes)
