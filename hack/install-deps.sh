#!/usr/bin/env bash
# Installs the Debian packages Stella's tests and demo run for real: the distribution
# registry, PostgreSQL 15, skopeo and htpasswd. Python packages come from constraints.txt
# (make venv); kube-apiserver and kwok are built from Go modules (hack/build-binaries.sh).
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v skopeo >/dev/null || need+=(skopeo)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The Debian registry package enables a system service; Stella runs its own on loopback.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
echo "system packages ready"
