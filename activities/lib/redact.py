"""Masking secrets: the values of environment variables whose names look like secrets.

Tools and gates run with the worker's environment (API keys included) and may print it; what
they print becomes log artifacts, output tails, failure reasons, events, reports and Temporal
payloads. Every one of those passes through here first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from schemas.spec_check import SECRET_NAME

MASK = "***"
_MIN_LENGTH = 6  # shorter values ("1", "true") would mask ordinary text


def secret_values(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if env is None else env
    return _values(tuple(sorted(env.items())))


@cache
def _values(items: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    found = {v for k, v in items if SECRET_NAME.search(k) and len(v) >= _MIN_LENGTH}
    # Longest first, so a secret that contains another is masked whole.
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    for value in secrets if secrets is not None else secret_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_file(path: Path, secrets: Iterable[str]) -> None:
    """Rewrite a (bounded) log file with its secrets masked."""
    values = [v.encode() for v in secrets]
    if not values or not path.is_file():
        return
    data = path.read_bytes()
    masked = data
    for value in values:
        masked = masked.replace(value, MASK.encode())
    if masked != data:
        path.write_bytes(masked)
