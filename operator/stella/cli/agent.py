"""`stella-agent`: the remote deployment agent's entry point.

The agent (one-time enrolment, mTLS task pulls, digest re-verification) is not built yet;
this entry point says so plainly instead of doing anything half-way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    print(
        "stella-agent: remote deployment agents are not available in this version.\n"
        "Environments that target agents (spec.targets[].agentSelector) are reported as\n"
        "Blocked with reason AgentTargetsUnsupported; deploy to namespace targets instead.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
