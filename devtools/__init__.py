"""Tools for developing and measuring waziup (not installed with it)."""
