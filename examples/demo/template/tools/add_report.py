"""ws-report: add inventory/report.py (Item from ws-models + format_cents from ws-utils) and tests."""

from _gen import write

write("inventory/report.py", '''\
"""A plain-text stock report: one row per item and the total value."""

from __future__ import annotations

from inventory.models import Item
from inventory.utils import format_cents


def render(lines: list[tuple[Item, int]], title: str = "Stock report") -> str:
    """A fixed-width table of (item, quantity) lines with the total at the bottom."""
    rows = [
        f"{item.sku:<6} {item.name:<12} {quantity:>4} {format_cents(item.line_total(quantity)):>10}"
        for item, quantity in lines
    ]
    total = sum(item.line_total(quantity) for item, quantity in lines)
    width = max([len(title), 35, *(len(row) for row in rows)])
    return "\\n".join(
        [title, "=" * width, *rows, "-" * width, f"{'total':<24}{format_cents(total):>{width - 24}}"]
    )
''')

write("tests/test_report.py", '''\
from inventory.models import Item
from inventory.report import render


def test_report_has_a_row_per_item_and_a_total():
    text = render([(Item("A-1", "anvil", 1999), 2), (Item("R-7", "rope", 250), 4)])
    assert text.splitlines() == [
        "Stock report",
        "===================================",
        "A-1    anvil           2     $39.98",
        "R-7    rope            4     $10.00",
        "-----------------------------------",
        "total                        $49.98",
    ]


def test_empty_report():
    assert render([], title="Nothing").splitlines()[-1].endswith("$0.00")
''')
