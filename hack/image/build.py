#!/usr/bin/env python3
"""`make image`: the operator's OCI image, built without a container daemon, reproducibly.

  1. the source is the commit (`git archive HEAD`), never the work tree;
  2. a Debian bookworm base from Debian's packages (mmdebstrap --variant=extract: files
     only, no maintainer scripts): python3.11-minimal, libpython3.11-stdlib and what they
     need, minus dpkg, tar and mawk — no shell, no package manager, no compiler;
  3. Stella and its dependencies from constraints.txt, as wheels only (pip --target, no
     build step inside the image), compiled to unchecked-hash .pyc by the image's own
     Python (PYTHONHASHSEED=0), so a read-only root filesystem costs no start-up time;
  4. user 65532 (nonroot), every mtime clamped to the commit time (SOURCE_DATE_EPOCH),
     one layer written by Python's tarfile in sorted order and gzip'd without a timestamp;
  5. an OCI image layout with org.opencontainers.image.* labels, an SPDX 2.3 SBOM beside it,
     then `skopeo copy` to the registry by digest; prints the pinned reference.

Two builds of the same commit against the same Debian archive state and the same wheels
give the same digest; a Debian point or security update changes it (the SBOM says which
package versions went in).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "hack"))

SUITE = os.environ.get("STELLA_IMAGE_SUITE", "bookworm")
PYTHON = "python3.11"
SITE = f"usr/local/lib/{PYTHON}/dist-packages"  # on Debian's sys.path, no PYTHONPATH needed
UID = GID = 65532
# What the base is made of; apt adds their dependencies.
DEBIAN_PACKAGES = ["python3.11-minimal", "libpython3.11-stdlib", "base-files", "netbase"]
# Dragged in as dependencies, not needed at run time: a package manager, an archiver, awk.
DROP_PACKAGES = {"dpkg", "tar", "mawk"}
# Documentation and translations: no one reads them in an operator's container.
DROP_TREES = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "var/cache",
    "var/lib/dpkg",
    "var/lib/apt",
    "var/log",
    "etc/apt",
    "etc/dpkg",
)
# kubernetes' asyncio client (68 of its 126 MB with .pyc); Stella uses the sync client and
# kopf its own. The build fails if the source ever imports it.
PRUNE = ["kubernetes/aio"]
WHEEL_PLATFORMS = [
    "manylinux_2_36_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def run(*argv: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def git(*args: str) -> str:
    return run("git", "-C", str(ROOT), *args, capture_output=True).stdout.strip()


# ---- 1. source -------------------------------------------------------------------------
def export_source(work: Path, commit: str) -> Path:
    src = work / "src"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    return src


# ---- 2. Debian base --------------------------------------------------------------------
def debian_base(work: Path, rootfs: Path, env: dict[str, str]) -> list[dict[str, str]]:
    debs = work / "debs"
    debs.mkdir()
    log(f"Debian {SUITE} base: {', '.join(DEBIAN_PACKAGES)} (mmdebstrap, extract only)")
    run(
        "mmdebstrap",
        "--quiet",
        "--mode=root",
        "--variant=extract",
        "--include=" + ",".join(DEBIAN_PACKAGES),
        "--skip=download/empty",
        f'--extract-hook=cp "$1"/var/cache/apt/archives/*.deb {debs}/',
        SUITE,
        str(rootfs),
        env=env,
    )
    packages = []
    for deb in sorted(debs.glob("*.deb")):
        fields = (
            run(
                "dpkg-deb",
                "--show",
                "--showformat",
                "${Package}\t${Version}\t${Architecture}\t${Source}\n",
                str(deb),
                capture_output=True,
            )
            .stdout.strip()
            .split("\t")
        )
        name, version, arch, source = fields + [""] * (4 - len(fields))
        if name in DROP_PACKAGES:
            remove_package_files(rootfs, deb)
            continue
        packages.append(
            {
                "name": name,
                "version": version,
                "arch": arch,
                "source": (source.split(" ")[0] or name),
            }
        )
    for tree in DROP_TREES:
        shutil.rmtree(rootfs / tree, ignore_errors=True)
    for sub in ("dev", "proc", "sys", "run"):
        shutil.rmtree(rootfs / sub, ignore_errors=True)
        (rootfs / sub).mkdir(mode=0o755)
    return packages


def remove_package_files(rootfs: Path, deb: Path) -> None:
    """Delete the files and symlinks one package brought (its directories may stay)."""
    out = run("dpkg-deb", "-c", str(deb), capture_output=True).stdout
    for line in out.splitlines():
        path = line.split(None, 5)[-1].split(" -> ")[0].split(" link to ")[0]
        target = rootfs / path.removeprefix("./")
        if path != "./" and (target.is_symlink() or target.is_file()):
            target.unlink()


# ---- 3. Stella and its wheels ----------------------------------------------------------
def python_packages(work: Path, src: Path, rootfs: Path, env: dict[str, str]) -> None:
    wheels = work / "wheels"
    log("Stella wheel from the commit, dependencies as wheels from constraints.txt")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "-w",
        str(wheels),
        str(src),
        env=env,
    )
    (stella_wheel,) = wheels.glob("stella-*.whl")
    site = rootfs / SITE
    platforms = [f"--platform={p}" for p in WHEEL_PLATFORMS]
    run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--target",
        str(site),
        "--implementation=cp",
        "--python-version=3.11",
        "--abi=cp311",
        *platforms,
        "-c",
        str(src / "constraints.txt"),
        str(stella_wheel),
        env=env,
    )
    # Parts of dependencies Stella never imports (checked against the source, below).
    for part in PRUNE:
        used = run(
            "grep",
            "-rlE",
            rf"(from|import) {part.replace('/', '.')}\b|"
            rf"from {part.split('/')[0]} import {part.split('/')[1]}\b",
            str(src / "operator"),
            capture_output=True,
            check=False,
        ).stdout
        if used:
            raise SystemExit(f"{part} is pruned from the image but imported by: {used}")
        shutil.rmtree(site / part)
    # pip --target writes console scripts with this machine's interpreter; ours follow.
    shutil.rmtree(site / "bin", ignore_errors=True)
    for direct in site.glob("*.dist-info/direct_url.json"):  # names a build directory
        direct.unlink()
    for record in site.glob("*.dist-info/RECORD"):  # list only what is left
        lines = record.read_text().splitlines()
        kept = [
            ln
            for ln in lines
            if (site / ln.rsplit(",", 2)[0]).resolve().is_relative_to(site)
            and (site / ln.rsplit(",", 2)[0]).exists()
        ]
        record.write_text("".join(f"{ln}\n" for ln in kept))
    bindir = rootfs / "usr/local/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for script, module in (("stella", "stella.cli"), ("stella-agent", "stella.cli.agent")):
        path = bindir / script
        path.write_text(
            f"#!/usr/bin/{PYTHON}\nimport sys\n\nfrom {module} import main\n\nsys.exit(main())\n"
        )
        path.chmod(0o755)
    log("compiling .pyc with the image's Python (unchecked-hash: the image never changes)")
    run(
        "chroot",
        str(rootfs),
        f"/usr/bin/{PYTHON}",
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        f"/usr/lib/{PYTHON}",
        f"/{SITE}",
        env={**env, "PYTHONHASHSEED": "0"},
    )


def python_dists(rootfs: Path) -> list[dict[str, str]]:
    dists = []
    for meta in sorted((rootfs / SITE).glob("*.dist-info/METADATA")):
        fields: dict[str, str] = {}
        for line in meta.read_text(errors="replace").splitlines():
            if not line:
                break
            key, _, value = line.partition(": ")
            if key in ("Name", "Version", "License-Expression", "License") and key not in fields:
                fields[key] = value
        dists.append(
            {
                "name": fields.get("Name", meta.parent.name),
                "version": fields.get("Version", ""),
                "license": fields.get("License-Expression")
                or (fields.get("License", "") if len(fields.get("License", "")) < 80 else ""),
            }
        )
    return dists


# ---- 4. users, ownership, time ---------------------------------------------------------
def finish_rootfs(rootfs: Path, epoch: int) -> None:
    (rootfs / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"nonroot:x:{UID}:{GID}:nonroot:/home/nonroot:/usr/sbin/nologin\n"
    )
    (rootfs / "etc/group").write_text(f"root:x:0:\nnonroot:x:{GID}:\n")
    for d, mode, owner in (
        ("home/nonroot", 0o700, UID),
        ("var/lib/stella", 0o700, UID),
        ("tmp", 0o1777, 0),
        ("root", 0o700, 0),
    ):
        p = rootfs / d
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(mode)
        os.chown(p, owner, owner)
    for sub in ("etc/machine-id", "etc/hostname", "etc/resolv.conf"):
        (rootfs / sub).unlink(missing_ok=True)
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(rootfs, (epoch, epoch))


def layer_tar(rootfs: Path, epoch: int) -> bytes:
    """One layer: sorted entries, numeric owners, mtimes clamped, no atime/ctime."""
    buf = io.BytesIO()
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted_tree(rootfs):
            rel = path.relative_to(rootfs).as_posix()
            st = path.lstat()
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
            info.mtime = min(int(st.st_mtime), epoch)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type, info.linkname = tarfile.LNKTYPE, seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = rel
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            # devices, fifos and sockets have no place in an image layer
    return buf.getvalue()


def sorted_tree(root: Path) -> list[Path]:
    out: list[Path] = []

    def walk(d: Path) -> None:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            p = Path(entry.path)
            out.append(p)
            if entry.is_dir(follow_symlinks=False):
                walk(p)

    walk(root)
    return out


# ---- 5. OCI layout, SBOM, push ---------------------------------------------------------
def blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def oci_layout(layout: Path, layer: bytes, labels: dict[str, str], created: str) -> str:
    shutil.rmtree(layout, ignore_errors=True)
    layout.mkdir(parents=True)
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as z:
        z.write(layer)
    layer_desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        **blob(layout, gz.getvalue()),
    }
    site = f"/{SITE}"
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{UID}:{GID}",
            "Entrypoint": ["/usr/local/bin/stella"],
            "Cmd": ["operator", "run"],
            "WorkingDir": "/",
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/home/nonroot",
                "PYTHONUNBUFFERED=1",
                "PYTHONDONTWRITEBYTECODE=1",  # a read-only root filesystem; .pyc are built in
                f"SSL_CERT_FILE={site}/certifi/cacert.pem",  # no ca-certificates package
            ],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
        "history": [{"created": created, "created_by": "hack/image/build.py"}],
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **blob(layout, canonical(config)),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
        "annotations": labels,
    }
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **blob(layout, canonical(manifest)),
    }
    tag = labels["org.opencontainers.image.version"]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**manifest_desc, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (layout / "index.json").write_bytes(canonical(index))
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    return str(manifest_desc["digest"])


def spdx(
    debs: list[dict[str, str]],
    dists: list[dict[str, str]],
    labels: dict[str, str],
    digest: str,
    created: str,
) -> dict[str, object]:
    version = labels["org.opencontainers.image.version"]
    image_id = "SPDXRef-image"
    packages: list[dict[str, object]] = [
        {
            "SPDXID": image_id,
            "name": "stella",
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":", 1)[1]}],
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": f"pkg:oci/stella@{digest.replace(':', '%3A')}",
                }
            ],
        }
    ]
    rels = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image_id,
        }
    ]
    for d in debs:
        ref = f"SPDXRef-deb-{d['name']}".replace("+", "-").replace(".", "-")
        packages.append(
            {
                "SPDXID": ref,
                "name": d["name"],
                "versionInfo": d["version"],
                "downloadLocation": "NOASSERTION",
                "supplier": "Organization: Debian",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/{d['name']}@{d['version']}"
                        f"?arch={d['arch']}&distro=debian-12",
                    }
                ],
            }
        )
        rels.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": ref}
        )
    for p in dists:
        ref = f"SPDXRef-pypi-{p['name']}".replace("_", "-").replace(".", "-")
        packages.append(
            {
                "SPDXID": ref,
                "name": p["name"],
                "versionInfo": p["version"],
                "downloadLocation": "NOASSERTION",
                "licenseDeclared": p["license"]
                if p.get("license") and " " not in p["license"]
                else "NOASSERTION",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:pypi/{p['name'].lower().replace('_', '-')}@{p['version']}",
                    }
                ],
            }
        )
        rels.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": ref}
        )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"stella-{version}",
        "documentNamespace": f"https://stella.invalid/spdx/{digest}",
        "creationInfo": {"created": created, "creators": ["Tool: stella-hack-image-build"]},
        "packages": packages,
        "relationships": rels,
    }


def ensure_registry(arg: str | None) -> str:
    if arg:
        return arg
    from devenv.proc import http_ok
    from devenv.services import Registry

    port = int(os.environ.get("STELLA_REGISTRY_PORT", "5000"))
    host = f"127.0.0.1:{port}"
    if http_ok(f"http://{host}/v2/"):
        return host
    state = ROOT / ".local" / "registry"
    reg = Registry(state, port=port).start()
    assert reg.proc is not None
    (state / "registry.pid").write_text(str(reg.proc.pid))
    log(f"started a local registry on {host} (data in {state}; `make registry-down` stops it)")
    return host


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".local" / "image")
    parser.add_argument(
        "--registry",
        default=os.environ.get("STELLA_IMAGE_REGISTRY"),
        help="host:port to push to (default: a local registry on :5000)",
    )
    parser.add_argument("--commit", default="HEAD", help="the commit to build (default HEAD)")
    parser.add_argument("--no-push", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print(
            "make image needs root (mmdebstrap --mode=root, chroot, file ownership)",
            file=sys.stderr,
        )
        return 1
    started = time.monotonic()
    epoch = int(git("log", "-1", "--format=%ct", args.commit))
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    revision = git("rev-parse", f"{args.commit}^{{commit}}")
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(epoch),
        "PIP_NO_INPUT": "1",
        "PYTHONHASHSEED": "0",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stella-image-") as tmp:
        work = Path(tmp)
        src = export_source(work, revision)
        version = run(
            sys.executable,
            "-c",
            "import re,sys;print(re.search(r'__version__ = "
            '"([^"]+)"\', open(sys.argv[1]).read())[1])',
            str(src / "operator/stella/__init__.py"),
            capture_output=True,
        ).stdout.strip()
        rootfs = work / "rootfs"
        debs = debian_base(work, rootfs, env)
        python_packages(work, src, rootfs, env)
        dists = python_dists(rootfs)
        finish_rootfs(rootfs, epoch)
        log("writing the layer")
        layer = layer_tar(rootfs, epoch)
    labels = {
        "org.opencontainers.image.title": "stella",
        "org.opencontainers.image.description": "Stella release orchestrator (operator, CLI)",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": os.environ.get("STELLA_IMAGE_SOURCE")
        or git_remote()
        or "unknown (no git remote; set STELLA_IMAGE_SOURCE)",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.base.name": f"debian:{SUITE} (mmdebstrap, extract)",
    }
    layout = args.out / "oci"
    digest = oci_layout(layout, layer, labels, created)
    sbom = args.out / f"stella-{version}.spdx.json"
    sbom.write_text(json.dumps(spdx(debs, dists, labels, digest, created), indent=2) + "\n")
    size = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())
    log(
        f"built {digest} in {time.monotonic() - started:.0f}s: layer {len(layer) / 1e6:.1f} MB "
        f"uncompressed, {size / 1e6:.1f} MB compressed; {len(debs)} Debian packages, "
        f"{len(dists)} Python distributions; SBOM {sbom}"
    )
    (args.out / "digest").write_text(digest + "\n")
    if args.no_push:
        print(f"oci:{layout}:{version}@{digest}")
        return 0
    registry = ensure_registry(args.registry)
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout}:{version}",
        f"docker://{registry}/stella:{version}",
    )
    ref = f"{registry}/stella@{digest}"
    (args.out / "reference").write_text(ref + "\n")
    print(ref)
    return 0


def git_remote() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


if __name__ == "__main__":
    raise SystemExit(main())
