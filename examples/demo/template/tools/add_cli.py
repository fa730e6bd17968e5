"""ws-cli: add inventory/cli.py (lists a stock file with ws-utils' parser and formatter) and tests."""

from _gen import write

write("inventory/cli.py", '''\
"""Command line: ``python3 -m inventory.cli FILE`` lists a stock file.

A stock file has one ``sku, name, price, quantity`` line per entry; ``#`` starts a comment.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from inventory.utils import format_cents, parse_line


def read_stock_file(path: str) -> list[tuple[str, str, int, int]]:
    """The parsed entries of a stock file, in file order."""
    with open(path, encoding="utf-8") as lines:
        return [
            parse_line(line)
            for line in lines
            if line.strip() and not line.lstrip().startswith("#")
        ]


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="inventory", description="List a stock file.")
    parser.add_argument("file", help="lines of 'sku, name, price, quantity'")
    args = parser.parse_args(argv)
    for sku, name, price, quantity in read_stock_file(args.file):
        print(f"{sku:<6} {name:<12} {quantity:>4} x {format_cents(price)}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
''')

write("tests/test_cli.py", '''\
import io

from inventory.cli import main


def test_lists_a_stock_file(tmp_path):
    stock = tmp_path / "stock.txt"
    stock.write_text("# sku, name, price, quantity\\nA-1, anvil, 19.99, 2\\n\\nR-7, rope, 2.5, 4\\n")
    out = io.StringIO()
    assert main([str(stock)], out=out) == 0
    assert out.getvalue().splitlines() == [
        "A-1    anvil           2 x $19.99",
        "R-7    rope            4 x $2.50",
    ]
''')
