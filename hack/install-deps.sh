#!/usr/bin/env bash
# Installs the Debian packages Stella's tests and demo run for real: the distribution
# registry, PostgreSQL 15, skopeo, htpasswd, openssl, Chromium with its driver
# (the console's browser tests), Prometheus (verification gates, promtool) and Redis + git
# (a real Argo CD in the e2e tier). Python packages come from
# constraints.txt (make venv); kube-apiserver, kwok, etcd and helm are built from Go
# modules (hack/build-binaries.sh).
#
# `make test`, `make demo` and .ci/run call this first. When everything is present it
# only looks (command -v and file tests, a few milliseconds) and never runs apt.
#   hack/install-deps.sh [image]           install what is missing (as root, or sudo -n)
#   hack/install-deps.sh --check [image]   list what is missing; exit 1 if anything is
# `image` adds what `make image` uses: mmdebstrap, umoci and runc.
set -euo pipefail

check=false
if [ "${1:-}" = "--check" ]; then check=true; shift; fi

# Debian package -> how we know it is there.
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v skopeo >/dev/null || need+=(skopeo)
command -v openssl >/dev/null || need+=(openssl)
# The console's tests drive a real headless browser (tests/e2e/test_console_e2e.py).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# Verification gates query a real Prometheus (tests/e2e/test_verification_e2e.py); promtool
# tests the chart's alert rules.
command -v prometheus >/dev/null || need+=(prometheus)
# A real Argo CD runs in the e2e tier (tests/e2e/test_argocd_real_e2e.py): it keeps its
# cache in Redis; git serves its repositories (git daemon, part of git).
command -v redis-server >/dev/null || need+=(redis-server)
command -v git >/dev/null || need+=(git)
# `make venv` needs venv with ensurepip: Debian ships it apart from python3 itself.
if command -v "${PY:-python3}" >/dev/null && ! "${PY:-python3}" -c 'import ensurepip, venv' 2>/dev/null; then
  need+=("python$("${PY:-python3}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
fi
if [ "${1:-}" = "image" ]; then
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v umoci >/dev/null || need+=(umoci)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
fi

if ((${#need[@]} == 0)); then
  exit 0
fi

if $check; then
  echo "missing Debian packages: ${need[*]}"
  exit 1
fi

say() { printf '[deps] %s\n' "$*" >&2; }

if ! command -v apt-get >/dev/null; then
  say "missing: ${need[*]} (Debian package names), and this machine has no apt-get."
  say "Install their equivalents with your package manager, then run make again."
  exit 1
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    say "missing Debian packages: ${need[*]}"
    say "installing them needs root; run once:"
    say "    sudo bash hack/install-deps.sh"
    say "(or: sudo apt-get install --no-install-recommends ${need[*]}), then run make again."
    exit 1
  fi
fi

say "installing ${need[*]} (first run only)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
# The Debian registry package may enable a system service; Stella runs its own on loopback.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  "${SUDO[@]}" systemctl stop docker-registry || true
fi
say "system packages ready"
