"""Chaos runs: a phase with its worker and its Temporal dev server SIGKILLed at random."""
