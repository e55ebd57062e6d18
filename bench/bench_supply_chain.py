"""What requireSignatures and requireProvenance add to a promotion, per component.

Starts its own registries on loopback — Debian's docker-registry (distribution 2.8, no
Referrers API: Stella also reads the referrers tag schema there) and, with
``--registry both``, go-containerregistry's (hack/referrers-registry: the Referrers API
answers) — pushes images with a cosign-style signature (``sha256-<hex>.sig``) and SLSA
provenance (``sha256-<hex>.att``) made in-process with keys generated for the run, and
measures per image, interleaved round by round so that load from other processes falls on
every line alike:

  * digest verification alone (today's check before deploy): the floor;
  * digest + signature check, digest + provenance check, digest + both;
  * the verification work alone, without the registry (parse + ECDSA verify).

Prints p50/p99 of each and the p50 added over the floor (absolute and as a ratio).
Run: .venv/bin/python bench/bench_supply_chain.py [--rounds 300] [--registry both]
(about 20 s a registry)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "hack"), str(ROOT / "operator")]

from tests.supplychain_support import (  # noqa: E402
    BUILDER,
    REPO,
    KeyPair,
    att_layer,
    found,
    provenance,
    sig_layer,
    signature,
)

from devenv.services import ReferrersRegistry, Registry, push_image  # noqa: E402
from stella.registry import RegistryClient, parse_pinned  # noqa: E402
from stella.registry.artifacts import cosign_tag, push_blob, push_manifest  # noqa: E402
from stella.supplychain.check import (  # noqa: E402
    ProvenanceRule,
    SignatureRule,
    check_image,
    check_provenance,
    check_signatures,
)
from stella.supplychain.cosign import layer_manifest  # noqa: E402
from summary import record  # noqa: E402

IMAGES = 16


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def attach(client: RegistryClient, image: str, suffix: str, layer: tuple) -> None:  # type: ignore[type-arg]
    ref = parse_pinned(image)
    assert ref.digest is not None
    config, manifest = layer_manifest([layer])
    for blob in (config, layer[0]):
        await push_blob(client, ref, blob)
    await push_manifest(client, ref, cosign_tag(ref.digest, suffix), manifest)


async def bench(reg: Registry, rounds: int, label: str) -> None:
    ci, builder = KeyPair.generate("ci"), KeyPair.generate("builder")
    sig_rule = SignatureRule(keys=(KeyPair.generate("other").trusted, ci.trusted))
    prov_rule = ProvenanceRule(
        keys=(builder.trusted,), builders=(BUILDER,), source_repositories=(REPO,)
    )
    images = []
    async with RegistryClient(insecure_registries={reg.host}) as client:
        for i in range(IMAGES):
            digest = push_image(reg.url, f"bench/sc{i}", "v1", uuid.uuid4().bytes * 64)
            image = f"{reg.host}/bench/sc{i}@{digest}"
            await attach(client, image, "sig", sig_layer(signature(ci, digest, image)))
            await attach(client, image, "att", att_layer(provenance(builder, digest)))
            images.append(image)

        async def digest_only(image: str) -> None:
            await client.verify_digest(image)

        async def with_rules(
            image: str, sig: SignatureRule | None, prov: ProvenanceRule | None
        ) -> None:
            await client.verify_digest(image)
            result = await check_image(client, image, sig, prov)
            assert result.ok, result.message

        cases: dict[str, Callable[[str], Awaitable[None]]] = {
            "digest only (floor)": digest_only,
            "digest + signature": lambda i: with_rules(i, sig_rule, None),
            "digest + provenance": lambda i: with_rules(i, None, prov_rule),
            "digest + signature + provenance": lambda i: with_rules(i, sig_rule, prov_rule),
        }
        for fn in cases.values():  # warm the pool and the code paths
            await fn(images[0])
        lat: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(rounds):
            image = images[r % IMAGES]
            for name, fn in cases.items():
                t = time.perf_counter()
                await fn(image)
                lat[name].append(time.perf_counter() - t)

    digest = images[0].rsplit("@", 1)[1]
    mem = found(signature(ci, digest), provenance(builder, digest))
    cpu: list[float] = []
    for _ in range(rounds):
        t = time.perf_counter()
        check_signatures(images[0], digest, mem, sig_rule)
        check_provenance(images[0], digest, mem, prov_rule)
        cpu.append(time.perf_counter() - t)

    floor = statistics.median(lat["digest only (floor)"])
    print(
        f"registry: {label} on loopback; {rounds} rounds, one image per round, "
        f"interleaved; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    tag = "referrers API: " if isinstance(reg, ReferrersRegistry) else ""
    print(f"{'per component':<36} {'p50':>9} {'p99':>9} {'added p50':>10} {'x floor':>8}")
    for name, samples in lat.items():
        p50 = statistics.median(samples)
        print(
            f"{name:<36} {p50 * 1e3:7.2f}ms {pct(samples, 99) * 1e3:7.2f}ms "
            f"{(p50 - floor) * 1e3:8.2f}ms {p50 / floor:7.1f}x"
        )
        record("supply-chain", f"{tag}{name} p50", p50 * 1e3, "ms", floor=floor * 1e3)
        record("supply-chain", f"{tag}{name} p99", pct(samples, 99) * 1e3, "ms")
    print(
        f"{'verification work alone (no I/O)':<36} {statistics.median(cpu) * 1e3:7.2f}ms "
        f"{pct(cpu, 99) * 1e3:7.2f}ms"
    )
    record("supply-chain", "signature + provenance CPU p50", statistics.median(cpu) * 1e3, "ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--registry", choices=["distribution", "referrers", "both"], default="both")
    args = ap.parse_args()
    kinds = {
        "distribution": (Registry, "distribution 2.8 (no Referrers API)"),
        "referrers": (ReferrersRegistry, "go-containerregistry (Referrers API)"),
    }
    chosen = list(kinds) if args.registry == "both" else [args.registry]
    with tempfile.TemporaryDirectory() as tmp:
        for i, kind in enumerate(chosen):
            cls, label = kinds[kind]
            reg = cls(Path(tmp) / kind).start()
            try:
                if i:
                    print()
                asyncio.run(bench(reg, args.rounds, label))
            finally:
                reg.stop()


if __name__ == "__main__":
    main()
