#!/usr/bin/env bash
# Regenerates cri_subset_pb2.py from cri_subset.proto with Debian's protoc (protobuf-compiler 3.21),
# matching Debian's python3-protobuf 3.21 runtime. The output is committed; CI never runs this.
set -euo pipefail
cd "$(dirname "$0")"
/usr/bin/protoc --version
/usr/bin/protoc -I. --python_out=. cri_subset.proto
