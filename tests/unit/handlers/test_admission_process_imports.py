"""`stella admission run` is the webhooks alone: importing its module loads neither kopf nor
the promotion engine's reconcile, in a fresh interpreter (this one has loaded them)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_admission_process_loads_no_kopf_and_no_engine() -> None:
    probe = (
        "import json, sys; import stella.handlers.admission_process; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m == 'kopf' or m.startswith(('kopf.', 'stella.engine.reconcile', "
        "'stella.handlers.main', 'stella.handlers.lifecycle')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
