"""ws-models: add inventory/models.py (Item, a catalogue entry) and its tests."""

from _gen import write

write("inventory/models.py", '''\
"""Catalogue items: what a SKU is and what one unit costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One catalogue entry. Prices are integer cents, never floats."""

    sku: str
    name: str
    unit_price_cents: int

    def __post_init__(self) -> None:
        if not self.sku:
            raise ValueError("an item needs a sku")
        if self.unit_price_cents < 0:
            raise ValueError(f"{self.sku}: negative price {self.unit_price_cents}")

    def line_total(self, quantity: int) -> int:
        """The price of ``quantity`` units, in cents."""
        return self.unit_price_cents * quantity
''')

write("tests/test_models.py", '''\
import pytest

from inventory.models import Item


def test_line_total_is_in_cents():
    assert Item("A-1", "anvil", 1999).line_total(3) == 5997


def test_items_are_values():
    assert Item("A-1", "anvil", 1) == Item("A-1", "anvil", 1)
    assert len({Item("A-1", "anvil", 1), Item("A-1", "anvil", 1)}) == 1


@pytest.mark.parametrize("sku, price", [("", 1), ("A-1", -1)])
def test_invalid_items_are_refused(sku, price):
    with pytest.raises(ValueError):
        Item(sku, "anvil", price)
''')
