#!/usr/bin/python3
"""Merges swiftkata's CRI runtime handler into a containerd config.toml, reading it as TOML (Python's
tomllib) and leaving every runtime that worked before it working.

    containerd-config.py merge CONFIG [--needs-restrict-oom-score-adj]

A config that names any runtime under the CRI plugin's `containerd.runtimes` replaces containerd's
built-in list, so a file without that table (Debian's stock one) gets `runc` spelled out next to
`kata-runtime`, or CRI fails to load ("no corresponding runtime configured … default_runtime_name").
Existing runtimes, options and other handlers are kept; `kata-runtime`, when present, is left alone.
What is added goes between "# BEGIN swiftkata" and "# END swiftkata" (a key added to an existing table
ends in "# swiftkata"), so uninstall.sh removes exactly that. The result is parsed again and checked
before it replaces the file (atomically). Prints "changed" or "unchanged"; exit 1 with a message when
the file cannot be merged safely (nothing is written then).
"""
import os
import re
import sys
import tomllib

RUNTIME_TYPE = "io.containerd.swiftkata.v2"
HANDLER = "kata-runtime"
MARK = "# swiftkata"
HANDLER_BLOCK = """[{runtimes}.kata-runtime]
  runtime_type = "io.containerd.swiftkata.v2"
  pod_annotations = ["io.swiftkata.*"]
  [{runtimes}.kata-runtime.options]
    ConfigPath = "/etc/swiftkata/configuration.toml"
"""
RUNC_BLOCK = """# Named because a runtimes table replaces containerd's built-in list (which has runc).
[{runtimes}.runc]
  runtime_type = "io.containerd.runc.v2"
"""


class MergeError(Exception):
    pass


def cri_plugin_name(document):
    """The CRI plugin's key in `plugins` for this config version (1: "cri", 2: the full id)."""
    version = document.get("version", 1)
    if version == 2:
        return "io.containerd.grpc.v1.cri"
    if version == 1:
        return "cri"
    raise MergeError(f"config version {version} is not one containerd 1.6/1.7 reads: add the handler by hand "
                     "(packaging/containerd-runtime.toml shows it for version 2)")


def quoted(name):
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def header_pattern(path):
    """A regex for the `[a."b.c".d]` header of `path` (a list of keys), quoting and spacing as TOML allows."""
    parts = [r'\s*(?:{0}|"{1}"|\'{1}\')\s*'.format(re.escape(key) if re.fullmatch(r"[A-Za-z0-9_-]+", key) else "(?!)",
                                                    re.escape(key)) for key in path]
    return re.compile(r"^\s*\[" + r"\.".join(parts) + r"\]\s*(#.*)?$")


def lookup(document, path):
    node = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def merge(text, needs_restrict_oom_score_adj):
    """The merged text, or None when nothing needs to change."""
    document = tomllib.loads(text) if text.strip() else {"version": 2}
    fresh = not text.strip()
    cri = cri_plugin_name(document)
    cri_path = ["plugins", cri]
    runtimes_path = cri_path + ["containerd", "runtimes"]
    runtimes_header = ".".join(quoted(key) for key in runtimes_path)
    runtimes = lookup(document, runtimes_path)
    if runtimes is not None and not isinstance(runtimes, dict):
        raise MergeError(f"{'.'.join(runtimes_path)} is not a table")
    handler = (runtimes or {}).get(HANDLER)

    lines = text.splitlines()
    appended = []
    if fresh:
        lines = ["version = 2"]
    if handler is None:
        default = (lookup(document, cri_path + ["containerd"]) or {}).get("default_runtime_name", "runc")
        if runtimes is None or default not in runtimes:
            if default != "runc":
                raise MergeError(f"default_runtime_name is \"{default}\", which no runtimes table names: "
                                 "name it before adding swiftkata's handler")
            appended.append(RUNC_BLOCK.format(runtimes=runtimes_header))
        appended.append(HANDLER_BLOCK.format(runtimes=runtimes_header))
    elif handler.get("runtime_type") != RUNTIME_TYPE:
        raise MergeError(f"the CRI handler {HANDLER} already runs {handler.get('runtime_type')!r}, not {RUNTIME_TYPE}: "
                         "left as it is; remove or rename it first")

    cri_table = lookup(document, cri_path) or {}
    if needs_restrict_oom_score_adj and cri_table.get("restrict_oom_score_adj") is not True:
        setting = f"restrict_oom_score_adj = true  {MARK}: no CAP_SYS_RESOURCE here for pause containers' oom_score_adj"
        explicit = re.compile(r"^(\s*)restrict_oom_score_adj\s*=\s*false\s*(#.*)?$")
        found = [index for index, line in enumerate(lines) if explicit.match(line)]
        if "restrict_oom_score_adj" in cri_table and len(found) == 1:
            # containerd's full default spells out `= false`; on this host CRI pods (runc's too) fail with it.
            lines[found[0]] = explicit.match(lines[found[0]]).group(1) + setting + " (was false)"
        elif "restrict_oom_score_adj" in cri_table:
            raise MergeError("restrict_oom_score_adj is set in a form this merge does not rewrite, but this host has "
                             "no CAP_SYS_RESOURCE: set it to true by hand (CRI pods' pause containers fail otherwise)")
        pattern = header_pattern(cri_path)
        at = next((index for index, line in enumerate(lines) if pattern.match(line)), None)
        if "restrict_oom_score_adj" in cri_table:
            pass  # rewritten in place above
        elif at is not None:
            indent = re.match(r"\s*", lines[at + 1] if at + 1 < len(lines) else "").group(0)
            lines.insert(at + 1, indent + setting)
        else:
            # The table exists only implicitly (through its sub-tables) or not at all: define it.
            appended.insert(0, f"[{'.'.join(quoted(key) for key in cri_path)}]\n  {setting}\n")

    if not appended and lines == text.splitlines():
        return None
    merged = "\n".join(lines).rstrip("\n") + "\n"
    if appended:
        merged += "# BEGIN swiftkata\n" + "\n".join(appended) + "# END swiftkata\n"
    check(merged, runtimes_path, needs_restrict_oom_score_adj, cri_path)
    return merged


def check(merged, runtimes_path, needs_restrict_oom_score_adj, cri_path):
    """The merged text must parse and say what was meant: never write a file containerd rejects."""
    try:
        document = tomllib.loads(merged)
    except tomllib.TOMLDecodeError as error:
        raise MergeError(f"the merged file would not be valid TOML ({error}): merge it by hand") from error
    runtimes = lookup(document, runtimes_path) or {}
    if runtimes.get(HANDLER, {}).get("runtime_type") != RUNTIME_TYPE:
        raise MergeError("the merged file does not define the handler (unexpected layout): merge it by hand")
    default = (lookup(document, cri_path + ["containerd"]) or {}).get("default_runtime_name", "runc")
    if default not in runtimes:
        raise MergeError(f"the merged file has no runtime {default} (default_runtime_name): merge it by hand")
    if needs_restrict_oom_score_adj and (lookup(document, cri_path) or {}).get("restrict_oom_score_adj") is not True:
        raise MergeError("restrict_oom_score_adj did not come out true: merge it by hand")


def write_atomically(path, text):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.swiftkata.{os.getpid()}"
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(temporary, path)


def main(arguments):
    if len(arguments) < 2 or arguments[0] != "merge":
        print(__doc__.strip().split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    path = arguments[1]
    needs = "--needs-restrict-oom-score-adj" in arguments[2:]
    try:
        text = open(path).read() if os.path.exists(path) else ""
        merged = merge(text, needs)
    except (MergeError, tomllib.TOMLDecodeError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    if merged is None:
        print("unchanged")
        return 0
    write_atomically(path, merged)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
