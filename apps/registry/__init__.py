"""Land and mineral-rights registry: corner lists, conflict checks, bitemporal versions."""
