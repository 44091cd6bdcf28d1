"""Server-rendered HTML of the identity manager (no JavaScript)."""
