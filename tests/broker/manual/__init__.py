"""Tests written from Orion's manuals (../shared/reference/orion/), one module per area; each test cites
the section it follows (issue 13)."""
