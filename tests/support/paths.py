"""Where the suite finds the repository and the benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("BOUNDARY_DATA_DIR") or REPO.parent / "shared" / "data")
