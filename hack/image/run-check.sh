#!/usr/bin/env bash
# `make image-check`: run the built image under runc, as the chart's Deployment would run
# it (uid 65532 from the image, read-only root filesystem, no capabilities), without a
# container daemon: umoci unpacks the OCI layout into a runtime bundle, runc runs
# `stella --version`, then imports every native dependency once.
#   hack/image/run-check.sh [OCI_LAYOUT_DIR]   (default .local/image/oci)
set -euo pipefail
cd "$(dirname "$0")/../.."
layout="${1:-.local/image/oci}"
[ -f "$layout/index.json" ] || { echo "no OCI layout at $layout; run make image first" >&2; exit 1; }
tag="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$layout/index.json")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null

run() {  # run ARGV... in the bundle: the image's user and env, read-only root, no caps
  python3 - "$work/bundle/config.json" "$@" <<'PY'
import json, sys
path, argv = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["args"] = argv
c["process"]["terminal"] = False
c["process"]["noNewPrivileges"] = True
c["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
c["root"]["readonly"] = True
json.dump(c, open(path, "w"))
PY
  runc run --bundle "$work/bundle" "stella-image-check-$$"
}

echo "uid/gid from the image: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["user"])' "$work/bundle/config.json")"
run /usr/local/bin/stella --version
run /usr/bin/python3.11 -c '
import ssl, zoneinfo
import cryptography, kopf, kubernetes, psycopg, pydantic
import stella.handlers.main
assert ssl.create_default_context().cert_store_stats()["x509_ca"] > 0
zoneinfo.ZoneInfo("Europe/Berlin")
print("imports ok: handlers, kopf, kubernetes, psycopg", psycopg.pq.__impl__, "; CA bundle and time zones present")'
echo "no shell, no package manager, no compiler in the image:"
for tool in sh bash dash apt apt-get dpkg pip pip3 gcc cc; do
  for dir in bin usr/bin usr/local/bin sbin usr/sbin; do
    if [ -e "$work/bundle/rootfs/$dir/$tool" ]; then echo "  found $dir/$tool" >&2; exit 1; fi
  done
done
echo "  none of sh bash dash apt apt-get dpkg pip pip3 gcc cc"
