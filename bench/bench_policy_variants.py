"""Where the API server's CPU for Stella's in-API-server admission goes: prints figures,
asserts nothing.

.venv/bin/python bench/bench_policy_variants.py [--rate 200] [--seconds 4] [--rounds 4]
    [--baseline FILE] [--candidate FILE ...] [--only NAMES] [--no-pods] [--profile DIR]

One control plane (etcd + kube-apiserver), the operator started only to publish its
parameter objects (stella-release-params, stella-approved-digests) and then stopped; the
webhook configurations stay registered (their matchConditions are evaluated on every
Release create whether or not the webhook is called, so their cost is part of "all").
Then open-loop dry-run creates at --rate through one admission variant after another,
interleaved in rounds (each variant sees the same machine), and per variant: kube-apiserver
CPU per create (/proc) and client p50/p99, each against the variant with no admission of
Stella's at all measured in the same rounds, and the median over rounds of the CPU a variant
adds. On a shared 2-core machine differences under ~0.1 ms a create are noise; with
--profile, the policy plugins' own subtrees in kube-apiserver's CPU profiles
(`go tool pprof -top -cum`) are the steadier measure (docs/admission.md, "What it costs").

Release variants remove one part at a time from the chart's set (charts/stella/files/
admission-policies.yaml + the webhook configurations); with --candidate FILE, FILE (a
changed policy file, with the webhook configurations of this checkout) is measured too, and
--baseline FILE is measured as the chart's (e.g. `git show main:charts/stella/files/
admission-policies.yaml`: before and after in the same rounds).
Pod variants: a managed namespace (workload-digests.stella.io, 1,000 approved digests) and
an unmanaged one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_webhooks import (  # noqa: E402
    MANAGED,
    SERVER,
    UNMANAGED,
    Caller,
    Run,
    approve_digests,
    cluster,
    load,
    pct,
    pod,
    prepare,
    send,
    server_cpu,
    start_operator,
)
from devenv.controlplane import OPERATOR_USER, ControlPlane  # noqa: E402
from devenv.webhooks import policies_text  # noqa: E402
from stella.admission.configuration import configurations  # noqa: E402

Obj = dict[str, Any]


def key(o: Obj) -> tuple[str, str]:
    return (o["kind"], o["metadata"]["name"])


def policy_objects(text: str) -> list[Obj]:
    return [o for o in yaml.safe_load_all(text) if o]


def webhook_objects() -> list[Obj]:
    bundle = base64.b64encode(b"unused").decode()
    # A dead URL: plain Release creates never call it (the matchConditions say so); were
    # one called, the create would fail and show in the statuses.
    return list(configurations(bundle, base_url="https://127.0.0.1:9"))


@dataclass
class Variant:
    name: str
    objects: list[Obj]
    runs: Run = field(default_factory=Run)
    slices: list[Run] = field(default_factory=list)  # one a round, in round order

    def add(self, run: Run) -> None:
        self.runs.add(run)
        self.slices.append(run)


def release_variants(chart: list[Obj], candidates: list[list[Obj]]) -> list[Variant]:
    hooks = webhook_objects()
    everything = chart + hooks

    def policies_without(*names: str) -> list[Obj]:
        return [o for o in chart if o["metadata"]["name"] not in names]

    # Without the stamp-requester policy the webhooks would be called (and fail: dead URL),
    # so the variants that drop it drop the webhook configurations too.
    out = [
        Variant("none", []),
        Variant("all (chart + webhook configs)", everything),
        Variant("policies only (- webhook configs)", chart),
        Variant("policies - stamp-requester", policies_without("stamp-requester.stella.io")),
        Variant("policies - release-create", policies_without("release-create.stella.io")),
        Variant(
            "policies - both",
            policies_without("stamp-requester.stella.io", "release-create.stella.io"),
        ),
    ]
    for n, candidate in enumerate(candidates, 1):
        out.append(Variant(f"candidate{n} (file + webhook configs)", candidate + hooks))
    return out


def apply_set(cp: ControlPlane, want: list[Obj], have: list[Obj]) -> None:
    """Make the admission objects in the cluster exactly `want` (of those this script
    manages), then give the API server's informers a moment."""
    wanted = {key(o) for o in want}
    gone = [o for o in have if key(o) not in wanted]
    # Bindings before policies, so no binding is left pointing at nothing.
    for o in sorted(gone, key=lambda o: "Binding" not in o["kind"]):
        cp.kubectl(
            "admin",
            "delete",
            o["kind"].lower(),
            o["metadata"]["name"],
            "--ignore-not-found",
            check=False,
        )
    if want:
        cp.kubectl(
            "admin",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": want}),
        )
    time.sleep(2.0)


def table(title: str, variants: list[Variant], floor: Variant) -> None:
    print(title)
    print(
        f"  {'':<38} {'n':>6} {'ok':>6} {'api ms':>7} {'api x':>6} {'+api ms':>7} "
        f"{'p50 ms':>7} {'p50 x':>6} {'p99 ms':>7} {'p99 x':>6} {'med +api':>8}"
    )
    f_cpu = server_cpu(floor.runs)
    f50, f99 = pct(floor.runs.latencies, 0.5), pct(floor.runs.latencies, 0.99)
    for v in variants:
        r = v.runs
        cpu = server_cpu(r)
        p50, p99 = pct(r.latencies, 0.5), pct(r.latencies, 0.99)
        # The median over rounds of the CPU added in that round (a round's variants ran
        # seconds apart): less swayed by one round that shared the cores with others' work.
        paired = statistics.median(
            server_cpu(a) - server_cpu(b) for a, b in zip(v.slices, floor.slices, strict=True)
        )
        print(
            f"  {v.name:<38} {len(r.latencies):6d} {r.statuses.get(201, 0):6d} "
            f"{cpu * 1000:7.3f} {cpu / f_cpu:5.2f}x {(cpu - f_cpu) * 1000:+7.3f} "
            f"{p50 * 1000:7.1f} {p50 / f50:5.2f}x {p99 * 1000:7.1f} {p99 / f99:5.2f}x "
            f"{paired * 1000:+8.3f}"
        )
    for v in variants:
        bad = {s: n for s, n in v.runs.statuses.items() if s != 201}
        if bad:
            print(f"    {v.name}: NOT all admitted: {bad}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds a slice")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--candidate",
        type=Path,
        action="append",
        default=[],
        help="a changed admission-policies.yaml (repeatable: candidate 1, 2, ...)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="measure this policy file as the chart's (default: this checkout's); "
        "e.g. `git show main:charts/stella/files/admission-policies.yaml > FILE`",
    )
    ap.add_argument("--profile", type=Path, help="kube-apiserver CPU profiles here")
    ap.add_argument("--only", default="", help="comma-separated variant names to keep")
    ap.add_argument("--pods", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()

    chart = policy_objects(args.baseline.read_text() if args.baseline else policies_text())
    candidates = [policy_objects(c.read_text()) for c in args.candidate]
    variants = release_variants(chart, candidates)
    if args.only:
        keep = {"none", *args.only.split(",")}
        variants = [v for v in variants if v.name in keep or v.name.split(" ")[0] in keep]

    workdir = Path(tempfile.mkdtemp(prefix="stella-bench-variants-"))
    try:
        run(args, variants, chart, candidates, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(
    args: argparse.Namespace,
    variants: list[Variant],
    chart: list[Obj],
    candidates: list[list[Obj]],
    workdir: Path,
) -> None:
    all_objects = {key(o): o for v in variants for o in v.objects}
    with cluster(workdir, profiling=args.profile is not None) as cp:
        api = next(p for p in cp.procs if p.name == "kube-apiserver")
        SERVER.pid = api.pid
        SERVER.admin = Caller(cp.server, cp.tokens["admin"], str(cp.ca_file))
        op = start_operator(cp, workdir, {"STELLA_RESYNC_SECONDS": "300"})
        admin = Caller(cp.server, cp.tokens["admin"], str(cp.ca_file))
        alice = Caller(cp.server, cp.tokens["alice"], str(cp.ca_file))
        operator = Caller(cp.server, cp.tokens[OPERATOR_USER], str(cp.ca_file))
        ns, env = prepare(cp, admin, alice)
        op.proc.stop()
        image = approve_digests(operator, env)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            SERVER.profiles = args.profile
        have = list(all_objects.values())  # the operator registered the chart's set
        print(f"[variants] ready; load {os.getloadavg()[0]:.2f}", file=sys.stderr)

        pods_path = {n: f"/api/v1/namespaces/{n}/pods?dryRun=All" for n in (MANAGED, UNMANAGED)}
        pod_runs = {MANAGED: Variant("managed namespace", []), UNMANAGED: Variant("unmanaged", [])}
        chart_set = chart + webhook_objects()
        pod_sets = [("chart", chart_set, pod_runs)]
        for n, candidate in enumerate(candidates, 1):
            runs = {MANAGED: Variant("managed namespace", []), UNMANAGED: Variant("unmanaged", [])}
            pod_sets.append((f"candidate{n}", candidate + webhook_objects(), runs))

        for rnd in range(args.rounds):
            print(f"[variants] round {rnd + 1}/{args.rounds}", file=sys.stderr)
            for v in variants:
                apply_set(cp, v.objects, have)
                have = v.objects
                load(alice, ns, env, args.rate, 1.0, 1_000_000 + rnd * 10_000)
                slug = v.name.split(" (")[0].replace(" ", "-")
                v.add(load(alice, ns, env, args.rate, args.seconds, rnd * 10_000, f"rel-{slug}"))
            if not args.pods:
                continue
            for name, objs, runs in pod_sets:
                apply_set(cp, objs, have)
                have = objs
                for where in (MANAGED, UNMANAGED):
                    make: Callable[[int], dict[str, object]] = lambda i: pod(i, image)  # noqa: E731
                    send(admin, pods_path[where], make, args.rate, 1.0, 1_000_000)
                    runs[where].add(
                        send(
                            admin,
                            pods_path[where],
                            make,
                            args.rate,
                            args.seconds,
                            0,
                            f"pod-{name}-{where}",
                        )
                    )

        print()
        print(
            f"Release create (dry run) at {args.rate:g}/s, {args.rounds} rounds x "
            f"{args.seconds:g} s a variant, {os.cpu_count()} cores, load "
            f"{os.getloadavg()[0]:.2f}; x and +: against 'none' in the same rounds"
        )
        table("", variants, variants[0])
        if args.pods:
            for name, _, runs in pod_sets:
                table(
                    f"Pod create (dry run), {name} policies; x against the unmanaged namespace",
                    [runs[MANAGED], runs[UNMANAGED]],
                    runs[UNMANAGED],
                )
    SERVER.pid, SERVER.admin, SERVER.profiles = 0, None, None


if __name__ == "__main__":
    main()
