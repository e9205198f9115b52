#!/bin/sh
# Builds the Go reference ttrpc peer (Tests/Interop/ttrpc-peer) offline, in
# GOPATH mode, against Debian's packaged Go sources:
#   apt-get install golang-go golang-github-containerd-ttrpc-dev \
#                   golang-github-gogo-protobuf-dev
#
# usage: Tests/Interop/build-peer.sh [outdir]
#   outdir defaults to <repo>/.build/interop. Prints the binary's path.
#   The build is skipped when the binary is newer than the sources.
#   Set TTRPC_PEER_GOPATH to use a GOPATH other than /usr/share/gocode.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src="$here/ttrpc-peer"
outdir=${1:-"$root/.build/interop"}
gopath=${TTRPC_PEER_GOPATH:-/usr/share/gocode}

die() {
    echo "build-peer.sh: $*" >&2
    exit 1
}

mkdir -p "$outdir" || die "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)
bin="$outdir/ttrpc-peer"

# Up to date? (any source file, or this script, newer than the binary)
if [ -x "$bin" ] && [ -z "$(find "$src" "$0" -newer "$bin" -type f 2>/dev/null | head -n 1)" ]; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null 2>&1 ||
    die "'go' not found; install golang-go (apt-get install golang-go)"

missing=""
for pkg in github.com/containerd/ttrpc:golang-github-containerd-ttrpc-dev \
           github.com/gogo/protobuf/types:golang-github-gogo-protobuf-dev \
           google.golang.org/grpc/status:golang-google-grpc-dev \
           google.golang.org/genproto/googleapis/rpc/status:golang-google-genproto-dev \
           github.com/sirupsen/logrus:golang-github-sirupsen-logrus-dev; do
    path=${pkg%%:*}
    [ -d "$gopath/src/$path" ] || missing="$missing ${pkg#*:}"
done
[ -z "$missing" ] ||
    die "Go packages missing under $gopath/src; install:$missing"

# Offline GOPATH build; no cgo so no C toolchain is needed.
export GO111MODULE=off GOPATH="$gopath" CGO_ENABLED=0 GOFLAGS= GOPROXY=off
# Fall back to a cache next to the binary when the default one is unusable
# (no $HOME, read-only home, ...).
if [ -z "${GOCACHE:-}" ]; then
    cache=$(go env GOCACHE 2>/dev/null || true)
    if [ -z "$cache" ] || [ "$cache" = off ] ||
       ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
        export GOCACHE="$outdir/go-cache"
    fi
fi

tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$root" && go build -o "$tmp" ./Tests/Interop/ttrpc-peer) ||
    die "go build failed"
mv -f "$tmp" "$bin"
echo "$bin"
