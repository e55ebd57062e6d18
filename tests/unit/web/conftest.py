"""Make the admission and evidence test helpers importable here too."""

from __future__ import annotations

import sys
from pathlib import Path

for helpers in ("admission", "evidence"):  # admission_factories, evidence_fakes
    where = str(Path(__file__).resolve().parent.parent / helpers)
    if where not in sys.path:
        sys.path.insert(0, where)
