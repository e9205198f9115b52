#!/usr/bin/env bash
# Formats the Swift sources with the checked-in .swift-format, or with --check (CI) fails on any
# file that is not formatted. Generated code (Sources/*/Generated) is left as its generators write it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift_format=${SWIFT_FORMAT:-$(command -v swift-format || echo /opt/swift/usr/bin/swift-format)}
mapfile -t files < <(git ls-files -- '*.swift' ':!:Sources/*/Generated/*' | while read -r f; do [[ -f "$f" ]] && echo "$f"; done)
if [[ "${1:-}" == "--check" ]]; then
    if ! "$swift_format" lint --strict --parallel "${files[@]}"; then
        echo "format: the files above are not formatted: run scripts/format.sh (or make format)" >&2
        exit 1
    fi
    echo "format: ${#files[@]} Swift files match .swift-format"
else
    "$swift_format" format --in-place --parallel "${files[@]}"
fi
