"""`python -m kiroproxy`: the same program as the `kiroproxy` console script and kiroproxy.py."""
from __future__ import annotations

from .cli import main

raise SystemExit(main())
