"""How well the error engine tells root causes apart, on real outputs.

    python bench/error_signatures.py

Runs the corpus of tests/error_corpus.py (python, pytest, unittest, ruff, flake8, mypy, git,
the shell and cargo failing for known reasons, each several times in other directories at
other line numbers; tsc, jest and go from captured samples) and prints the pairwise precision
and recall of "same signature ⇔ same root cause", and how long a classification takes.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from error_corpus import generate, pairwise  # noqa: E402

from activities.lib.errors.engine import classify  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        samples = generate(Path(tmp))
    causes = {s.cause for s in samples}
    captured = sum(1 for s in samples if s.source.startswith("sample "))
    precision, recall, pairs = pairwise(samples, lambda output: classify(output).signature)
    size = sum(len(s.output) for s in samples)
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for sample in samples:
            classify(sample.output)
    per = (time.perf_counter() - started) / (rounds * len(samples))
    print(
        f"corpus: {len(samples)} outputs ({captured} captured samples, the rest from real tool "
        f"runs) of {len(causes)} root causes; {pairs} pairs"
    )
    print(f"precision {precision:.3f}  recall {recall:.3f}  (target >= 0.95 each)")
    print(
        f"classification: {per * 1000:.2f} ms per output ({size / len(samples) / 1024:.1f} KiB "
        f"on average)"
    )
    return 0 if precision >= 0.95 and recall >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
