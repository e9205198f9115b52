#!/bin/bash
# Release builds of the host binaries (install.sh, make bench), linked for a small resident
# footprint since one shim daemon runs per pod (scripts/release-flags.sh says how).
# Measured on one idle pod (make bench): shim RSS 16.7 -> 14.2 MiB.
# usage: scripts/build-host-release.sh PRODUCT...
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/release-flags.sh
for product in "$@"; do
    swift build "${release_flags[@]}" --product "$product"
    require_release_link ".build/release/$product"
done
