"""Stock levels: how many units of each SKU are on hand."""

from __future__ import annotations


class Stock:
    """Units on hand per SKU. Levels never go negative."""

    def __init__(self) -> None:
        self._on_hand: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> int:
        """Receive ``quantity`` units of ``sku``; returns the new level."""
        _check_positive(quantity)
        self._on_hand[sku] = self.quantity(sku) + quantity
        return self._on_hand[sku]

    def remove(self, sku: str, quantity: int) -> int:
        """Take ``quantity`` units of ``sku`` out; returns the new level."""
        _check_positive(quantity)
        have = self.quantity(sku)
        if quantity > have:
            raise ValueError(f"only {have} of {sku} on hand, cannot remove {quantity}")
        self._on_hand[sku] = have - quantity
        return self._on_hand[sku]

    def quantity(self, sku: str) -> int:
        """Units of ``sku`` on hand (0 for an unknown SKU)."""
        return self._on_hand.get(sku, 0)

    def skus(self) -> list[str]:
        """The SKUs with stock on hand, sorted."""
        return sorted(sku for sku, n in self._on_hand.items() if n > 0)


def _check_positive(quantity: int) -> None:
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
