"""ws-api: add inventory/api.py (Catalog = Item records from ws-models + core.Stock) and tests."""

from _gen import write

write("inventory/api.py", '''\
"""A catalogue with stock: items by SKU plus how many of each are on hand."""

from __future__ import annotations

from inventory.core import Stock
from inventory.models import Item


class Catalog:
    """Items by SKU plus their stock levels; stock moves only for registered SKUs."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self.stock = Stock()

    def register(self, item: Item) -> None:
        """Add ``item``; registering the same item twice is fine, a different one is not."""
        known = self._items.get(item.sku)
        if known is not None and known != item:
            raise ValueError(f"SKU {item.sku} is already registered as {known.name!r}")
        self._items[item.sku] = item

    def item(self, sku: str) -> Item:
        """The registered item for ``sku``."""
        try:
            return self._items[sku]
        except KeyError:
            raise KeyError(f"unknown SKU {sku!r}") from None

    def receive(self, sku: str, quantity: int) -> int:
        """Put ``quantity`` units of a registered SKU in stock; returns the new level."""
        self.item(sku)
        return self.stock.add(sku, quantity)

    def ship(self, sku: str, quantity: int) -> int:
        """Take ``quantity`` units of a registered SKU out of stock; returns the new level."""
        self.item(sku)
        return self.stock.remove(sku, quantity)

    def lines(self) -> list[tuple[Item, int]]:
        """(item, units on hand) for every SKU in stock, by SKU."""
        return [(self._items[sku], self.stock.quantity(sku)) for sku in self.stock.skus()]

    def value_cents(self) -> int:
        """What the stock on hand is worth, in cents."""
        return sum(item.line_total(quantity) for item, quantity in self.lines())
''')

write("tests/test_api.py", '''\
import pytest

from inventory.api import Catalog
from inventory.models import Item

ANVIL = Item("A-1", "anvil", 1999)
ROPE = Item("R-7", "rope", 250)


def test_value_of_stock_on_hand():
    catalog = Catalog()
    catalog.register(ANVIL)
    catalog.register(ROPE)
    catalog.receive("R-7", 4)
    catalog.receive("A-1", 2)
    catalog.ship("A-1", 1)
    assert catalog.lines() == [(ANVIL, 1), (ROPE, 4)]
    assert catalog.value_cents() == 1999 + 4 * 250


def test_unknown_skus_cannot_move():
    with pytest.raises(KeyError, match="unknown SKU"):
        Catalog().receive("X-0", 1)


def test_a_sku_names_one_item():
    catalog = Catalog()
    catalog.register(ANVIL)
    catalog.register(Item("A-1", "anvil", 1999))
    with pytest.raises(ValueError, match="already registered"):
        catalog.register(Item("A-1", "not an anvil", 5))
''')
