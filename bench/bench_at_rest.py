"""What encryption at rest costs the API server: prints figures, asserts nothing.

.venv/bin/python bench/bench_at_rest.py [--objects 400] [--rounds 2]

Starts its own control plane (etcd + kube-apiserver only) twice per round: once as every
tier runs it (EncryptionConfiguration: secretbox over secrets, configmaps and *.stella.io;
hack/devenv/controlplane.py), once without it (the floor). In each it creates `--objects`
evidence-sized ConfigMaps (a 4 KiB envelope, what one evidence packet weighs), one after
another, then reads each back, and reports p50/p99 of create and get, the throughput, and
the ratios encrypted/plain from the same round. Rounds alternate the order so a machine
that gets busier does not favour one mode.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import client  # noqa: E402
from tests.kube_support import api_client_for  # noqa: E402

from devenv.controlplane import ControlPlane  # noqa: E402
from summary import record  # noqa: E402

PAYLOAD = base64.b64encode(os.urandom(3072)).decode()  # 4 KiB, like one packet


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(workdir: Path, encrypted: bool, objects: int) -> dict[str, list[float]]:
    cp = ControlPlane(workdir, with_workers=False, encrypt_at_rest=encrypted)
    try:
        cp.up()
        core = client.CoreV1Api(api_client_for(str(cp.kubeconfig), "admin"))
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
        out: dict[str, list[float]] = {"create": [], "get": []}
        for i in range(objects):
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"packet-{i:05d}"),
                data={"envelope.json": PAYLOAD},
                immutable=True,
            )
            t = time.perf_counter()
            core.create_namespaced_config_map("bench", body)
            out["create"].append(time.perf_counter() - t)
        for i in range(objects):
            t = time.perf_counter()
            core.read_namespaced_config_map(f"packet-{i:05d}", "bench")
            out["get"].append(time.perf_counter() - t)
        return out
    finally:
        cp.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stella-bench-at-rest-"))
    runs: dict[bool, dict[str, list[float]]] = {
        True: {"create": [], "get": []},
        False: {"create": [], "get": []},
    }
    try:
        for r in range(args.rounds):
            for encrypted in (r % 2 == 0, r % 2 != 0):
                got = measure(work / f"r{r}-{encrypted}", encrypted, args.objects)
                for op, values in got.items():
                    runs[encrypted][op].extend(values)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"\nencryption at rest (secretbox), {args.objects} ConfigMaps of 4 KiB x "
        f"{args.rounds} rounds; load average {load:.1f} on {os.cpu_count()} cores\n"
    )
    print(f"  {'':<22} {'p50 ms':>8} {'p99 ms':>8} {'per s':>8} {'p50 x':>6} {'p99 x':>6}")
    for op in ("create", "get"):
        plain = runs[False][op]
        for encrypted, label in ((False, f"{op}, plain (floor)"), (True, f"{op}, encrypted")):
            v = runs[encrypted][op]
            p50, p99 = pct(v, 0.5), pct(v, 0.99)
            print(
                f"  {label:<22} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {len(v) / sum(v):8.0f} "
                f"{p50 / pct(plain, 0.5):6.2f} {p99 / pct(plain, 0.99):6.2f}"
            )
        record(
            "at_rest",
            f"{op} p99, encrypted / plain",
            pct(runs[True][op], 0.99) * 1e3,
            "ms",
            goal=1.5,
            floor=pct(plain, 0.99) * 1e3,
            note="secretbox EncryptionConfiguration vs none, same machine and round",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
