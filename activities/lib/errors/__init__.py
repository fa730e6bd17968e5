"""The error engine: failures → signatures and categories (engine.py), by the table of what
tools print (rules.py)."""
