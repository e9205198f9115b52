#!/usr/bin/env bash
# Regenerates the Swift code in Sources/ContainerdAPI/Generated, Sources/AgentAPI/Generated and
# Sources/OperatorAPI/Generated.
#
# Inputs:
#   - containerd 1.6's protos from Debian's golang-github-containerd-containerd-dev,
#     golang-github-containerd-cgroups-dev and golang-github-gogo-googleapis-dev (via -dev deps);
#   - our own Sources/AgentAPI/agent.proto and Sources/OperatorAPI/operator.proto.
# Tools: protoc (Debian protobuf-compiler) and protoc-gen-swift built from the local swift-protobuf
# copy (1.39.0). Building the plugin takes minutes, so this never runs in CI; the output is committed.
#
# Usage: scripts/generate-protos.sh [path/to/protoc-gen-swift]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
plugin=${1:-${PROTOC_GEN_SWIFT:-}}
if [[ -z "$plugin" ]]; then
    tools=${SWIFTKATA_TOOLS:-/work/tools}
    if [[ ! -x "$tools/swift-protobuf/.build/release/protoc-gen-swift" ]]; then
        echo "building protoc-gen-swift 1.39.0 from /opt/swift-packages (several minutes)" >&2
        mkdir -p "$tools"
        [[ -d "$tools/swift-protobuf" ]] || git clone -q /opt/swift-packages/apple/swift-protobuf.git "$tools/swift-protobuf"
        git -C "$tools/swift-protobuf" checkout -q 1.39.0
        (cd "$tools/swift-protobuf" && swift build -c release --product protoc-gen-swift >&2)
    fi
    plugin="$tools/swift-protobuf/.build/release/protoc-gen-swift"
fi
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }

gocode=/usr/share/gocode/src
ctrd=$gocode/github.com/containerd/containerd
for f in "$ctrd/runtime/v2/task/shim.proto" "$gocode/github.com/containerd/cgroups/v2/stats/metrics.proto" \
         "$gocode/github.com/gogo/googleapis/google/rpc/status.proto"; do
    [[ -f "$f" ]] || { echo "missing $f: apt-get install golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev" >&2; exit 1; }
done

# Each proto is renamed so the generated Swift types have short, unambiguous names
# (containerd.task.v2.CreateTaskRequest -> Containerd_Task_V2_CreateTaskRequest etc. is kept:
# the package prefix is what protoc-gen-swift derives, and it avoids clashes between the
# cgroups v1 and v2 Metrics types).
out=$root/Sources/ContainerdAPI/Generated
rm -f "$out"/*.pb.swift
# runtimeoptions imports gogo.proto by its full GOPATH name while the other protos use
# "gogoproto/gogo.proto"; protoc refuses the same file under two names. Rewrite that import in a
# private copy, and add containerd 1.7's config_body field (3) so both series decode.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ropts=github.com/containerd/containerd/pkg/runtimeoptions/v1/api.proto
mkdir -p "$tmp/$(dirname "$ropts")"
sed -e 's#"github.com/gogo/protobuf/gogoproto/gogo.proto"#"gogoproto/gogo.proto"#' \
    -e 's#^\(\s*string config_path = 2;\)#\1\n\t// containerd 1.7: the configuration file itself.\n\tbytes config_body = 3;#' \
    "$gocode/$ropts" > "$tmp/$ropts"
grep -q 'config_body = 3' "$tmp/$ropts" || { echo "could not add config_body to $ropts" >&2; exit 1; }
includes=(-I "$tmp" -I "$gocode" -I "$gocode/github.com/gogo/protobuf" -I "$gocode/github.com/gogo/googleapis" -I /usr/include)
protoc "${includes[@]}" \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" \
    "$ctrd/runtime/v2/task/shim.proto" \
    "$ctrd/api/types/mount.proto" \
    "$ctrd/api/types/metrics.proto" \
    "$ctrd/api/types/task/task.proto" \
    "$ctrd/api/events/task.proto" \
    "$ctrd/api/services/ttrpc/events/v1/events.proto" \
    "$tmp/$ropts" \
    "$ctrd/runtime/v2/runc/options/oci.proto" \
    "$gocode/github.com/containerd/cgroups/stats/v1/metrics.proto" \
    "$gocode/github.com/containerd/cgroups/v2/stats/metrics.proto" \
    "$gocode/github.com/gogo/googleapis/google/rpc/status.proto"

agent_out=$root/Sources/AgentAPI/Generated
rm -f "$agent_out"/*.pb.swift
protoc -I "$root/Sources/AgentAPI" -I /usr/include \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_out="$agent_out" \
    "$root/Sources/AgentAPI/agent.proto"

operator_out=$root/Sources/OperatorAPI/Generated
rm -f "$operator_out"/*.pb.swift
protoc -I "$root/Sources/OperatorAPI" -I /usr/include \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_out="$operator_out" \
    "$root/Sources/OperatorAPI/operator.proto"

# Typed service protocols and clients (protoc-gen-swift emits messages only).
python3 "$root/scripts/gen-ttrpc-services.py" "$out/Services.swift" \
    "$ctrd/runtime/v2/task/shim.proto" "$ctrd/api/services/ttrpc/events/v1/events.proto"
python3 "$root/scripts/gen-ttrpc-services.py" --calls "$agent_out/Services.swift" "$root/Sources/AgentAPI/agent.proto"
python3 "$root/scripts/gen-ttrpc-services.py" --calls "$operator_out/Services.swift" "$root/Sources/OperatorAPI/operator.proto"
echo "generated Swift into $out, $agent_out and $operator_out" >&2
