#!/usr/bin/env bash
# Tier 2 Kubernetes binaries for `make test-k8s`: kube-apiserver, kube-controller-manager and
# kube-scheduler built from Debian bookworm's `kubernetes` source package (1.20.2) with
# Debian's golang-1.19, and etcd from Debian's etcd-server.
#
# The vendored github.com/modern-go/reflect2 1.0.1 crashes on Go >= 1.18 (it reads runtime
# internals that moved), so it is replaced by Debian's golang-github-modern-go-reflect2-dev
# (1.0.2) before building.
#
# The binaries are cached OUTSIDE the repository, in $SHIPYARD_K8S_CACHE (default
# /var/cache/shipyard-k8s/1.20.2): the first run takes about 15 minutes on 2 cores, later runs
# only check the cache. Prints the directory holding the binaries on its last line.
#
# The deb-src entry `apt-get source` needs is derived at run time from this machine's own apt
# sources (sources.list or sources.list.d/*.sources), pointed at bookworm, and used through a
# private apt configuration under the cache directory: the system's apt setup is not changed.
# Long steps run under `nice -n 19` and `ionice -c3`.
set -euo pipefail

K8S_VERSION=1.20.2
SRC_PKG_VERSION="1.20.5+really1.20.2"
CACHE=${SHIPYARD_K8S_CACHE:-/var/cache/shipyard-k8s/$K8S_VERSION}
BIN="$CACHE/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

export DEBIAN_FRONTEND=noninteractive
log() { echo "k8s-build: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
NICE=(nice -n 19)
if command -v ionice >/dev/null 2>&1; then NICE+=(ionice -c3); fi

cached() {
  local b
  for b in "${BINARIES[@]}" etcd; do
    [ -x "$BIN/$b" ] || return 1
  done
  "$BIN/kube-apiserver" --version 2>/dev/null | grep -q "v$K8S_VERSION"
}

need_debs=()
for p in golang-1.19-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev rsync make; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_debs+=("$p")
done
if [ "${#need_debs[@]}" -gt 0 ]; then
  if cached && [[ ! " ${need_debs[*]} " =~ " etcd-server " ]]; then
    :
  else
    log "installing Debian packages: ${need_debs[*]}"
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q --no-install-recommends "${need_debs[@]}" >&2
  fi
fi

mkdir -p "$BIN"
ln -sf /usr/bin/etcd "$BIN/etcd"

if cached; then
  log "cached binaries in $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)

# --- a deb-src entry for bookworm, derived from this machine's Debian archive entry ---------
debian_uri() {
  local f uri
  # deb822 .sources files: the first URIs: of a stanza whose Suites are the main archive's
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    uri=$(awk '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""; c=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u = a[1] }
          if ($i ~ /^Suites:/) { s = $i }
          if ($i ~ /^Components:/) { c = $i }
        }
        if (u != "" && s !~ /security/ && c ~ /main/) { print u; exit }
      }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  # one-line sources.list entries
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 !~ /security/ && $0 ~ / main/ {
        for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  return 1
}

URI=$(debian_uri) || { log "no Debian archive entry found in /etc/apt sources"; exit 1; }
APTDIR="$CACHE/apt"
mkdir -p "$APTDIR/lists/partial"
echo "deb-src $URI bookworm main" >"$APTDIR/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APTDIR/sources.list"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$APTDIR/lists"
)
log "deb-src entry derived from this machine's apt sources (bookworm)"
"${NICE[@]}" apt-get "${APT_OPTS[@]}" update -q >&2

WORK="$CACHE/src"
rm -rf "$WORK"
mkdir -p "$WORK"
(cd "$WORK" && "${NICE[@]}" apt-get "${APT_OPTS[@]}" source -q --only-source \
  "kubernetes=$SRC_PKG_VERSION*" >&2) ||
  (cd "$WORK" && "${NICE[@]}" apt-get "${APT_OPTS[@]}" source -q --only-source kubernetes >&2)
TREE=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[ -n "$TREE" ] || { log "apt-get source produced no kubernetes-* tree"; exit 1; }
log "source tree $TREE"

# --- replace the vendored reflect2 1.0.1 with Debian's 1.0.2 --------------------------------
R2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
R2_DST="$TREE/vendor/github.com/modern-go/reflect2"
[ -d "$R2_SRC" ] || { log "missing $R2_SRC (golang-github-modern-go-reflect2-dev)"; exit 1; }
[ -d "$R2_DST" ] || { log "no vendored reflect2 at $R2_DST"; exit 1; }
rm -rf "$R2_DST"
mkdir -p "$R2_DST"
# the package's Go files (not its tests), as `go mod vendor` would have copied them
find "$R2_SRC" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name 'LICENSE' \) \
  ! -name '*_test.go' -exec cp {} "$R2_DST/" \;
sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' \
  "$TREE/go.mod" "$TREE/vendor/modules.txt"
grep -q 'modern-go/reflect2 v1.0.2' "$TREE/vendor/modules.txt" ||
  { log "vendor/modules.txt does not name reflect2 v1.0.2 after the edit"; exit 1; }

# --- build ---------------------------------------------------------------------------------
# Kubernetes 1.20 builds in GOPATH mode (its hack/lib/init.sh sets GO111MODULE=off): the tree
# is linked at $GOPATH/src/k8s.io/kubernetes and vendor/ (whose k8s.io/* entries link into
# staging/) resolves every import. Go 1.19's module mode rejects this go.mod ("updates to
# go.mod needed"), so module mode is not used.
export GOROOT=/usr/lib/go-1.19
export PATH="$GOROOT/bin:$PATH"
export GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" GO111MODULE=off GOFLAGS=
export GOPROXY=off CGO_ENABLED=0
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$TREE" "$GOPATH/src/k8s.io/kubernetes"
go version >&2
# The API server's OpenAPI definitions are generated at build time, not shipped in the
# source: Kubernetes' own rule builds openapi-gen and writes pkg/generated/openapi.
log "generating pkg/generated/openapi (make gen_openapi)"
(cd "$TREE" && GOPATH= "${NICE[@]}" make gen_openapi >&2)
[ -s "$TREE/pkg/generated/openapi/zz_generated.openapi.go" ] ||
  { log "make gen_openapi wrote no pkg/generated/openapi/zz_generated.openapi.go"; exit 1; }
V=k8s.io/kubernetes/vendor/k8s.io/component-base/version
C=k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version
LDFLAGS="-s -w"
for pkg in "$V" "$C"; do
  LDFLAGS+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
OUT="$CACHE/build"
mkdir -p "$OUT"
for b in "${BINARIES[@]}"; do
  log "building $b"
  (cd "$GOPATH/src/k8s.io/kubernetes" &&
    "${NICE[@]}" go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/$b" "./cmd/$b" >&2)
done
for b in "${BINARIES[@]}"; do
  install -m 0755 "$OUT/$b" "$BIN/$b"
done
cached || { log "built binaries do not report v$K8S_VERSION"; exit 1; }
rm -rf "$WORK" "$OUT" "$GOCACHE" "$GOPATH"
log "built in $(($(date +%s) - start))s into $BIN"
echo "$BIN"
