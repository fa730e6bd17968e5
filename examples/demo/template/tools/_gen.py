"""Shared by the generators in this folder: write files relative to the repository root."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write(relative: str, text: str) -> None:
    path = ROOT / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {relative}")
