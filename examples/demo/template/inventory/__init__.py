"""inventory: a tiny stock-keeping library."""

from inventory.core import Stock

__all__ = ["Stock"]
__version__ = "0.1.0"
