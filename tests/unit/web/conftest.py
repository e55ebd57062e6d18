"""Make the admission test helpers (admission_factories) importable here too."""

from __future__ import annotations

import sys
from pathlib import Path

ADMISSION = str(Path(__file__).resolve().parent.parent / "admission")
if ADMISSION not in sys.path:
    sys.path.insert(0, ADMISSION)
