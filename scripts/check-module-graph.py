#!/usr/bin/env python3
"""Checks that the README's module graph is true: the block under "### Modules, and what each may
use" lists, for every non-test target of Package.swift, exactly its dependencies on local targets,
and every dependency points at a lower layer. Exits 1 naming each difference."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
package = (root / "Package.swift").read_text()
readme = (root / "README.md").read_text()

targets = {}
pieces = re.split(r"\.(target|executableTarget|systemLibrary|testTarget)\(", package)
for kind, body in zip(pieces[1::2], pieces[2::2]):
    name = re.search(r'name:\s*"([^"]+)"', body).group(1)
    path = re.search(r'path:\s*"([^"]+)"', body)
    if kind == "testTarget" or (path and path.group(1).startswith(("Tests/", "Benchmarks/"))):
        continue
    deps = re.search(r"dependencies:\s*\[(.*?)\]", body, re.S)
    local = re.findall(r'"([^"]+)"', re.sub(r"\.product\([^)]*\)", "", deps.group(1))) if deps else []
    targets[name] = set(local)

section = readme.split("### Modules, and what each may use", 1)[1]
block = section.split("```", 2)[1]
layer_of, listed, problems = {}, {}, []
layer = None
for line in block.strip().splitlines():
    head = re.match(r"(layer (\d+)|guest)?\s+(.*)$", line) if not line.startswith("layer") else re.match(r"(layer (\d+))\s+(.*)$", line)
    if line.startswith("layer"):
        layer = int(head.group(2))
    rest = head.group(3).strip()
    if " ──▶ " in rest:
        name, deps = rest.split(" ──▶ ", 1)
        listed[name.strip()] = {d.strip() for d in deps.split(",")}
        layer_of[name.strip()] = layer
    else:
        for name in re.sub(r"\(.*?\)", "", rest).split(","):
            if name.strip():
                listed.setdefault(name.strip(), set())
                layer_of[name.strip()] = layer

for name, deps in sorted(targets.items()):
    if name not in listed:
        problems.append(f"{name}: in Package.swift, missing from the README's module graph")
    elif listed[name] != deps:
        problems.append(f"{name}: README lists {sorted(listed[name])}, Package.swift has {sorted(deps)}")
for name in sorted(set(listed) - set(targets)):
    problems.append(f"{name}: in the README's module graph, not a target of Package.swift")
for name, deps in sorted(listed.items()):
    for dep in deps:
        if dep in layer_of and layer_of[dep] >= layer_of[name]:
            problems.append(f"{name} (layer {layer_of[name]}) uses {dep} (layer {layer_of[dep]}): not a lower layer")

if problems:
    print("module graph: README.md and Package.swift disagree:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"module graph: {len(targets)} targets, README.md matches Package.swift, every dependency points down")
