"""``python -m security.pep [options]``: the PEP proxy (``waziup pep``), see ``proxy.py``."""

from __future__ import annotations

from .proxy import main

if __name__ == "__main__":
    main()
