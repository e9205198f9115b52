#!/usr/bin/env python3
"""Generates typed Swift ttrpc service protocols and clients from the `service` blocks of .proto files.

protoc-gen-swift emits messages only; this emits, per service:
  - `protocol <Pkg>_<Service>Service`: one async method per rpc, plus `serviceDefinition` that
    registers them with a TTRPCServer, and `methodNames` (the rpcs in the order of the proto);
  - `struct <Pkg>_<Service>Client`: typed calls over a TTRPCClient, each with an optional timeout.
With --calls (for a host's client of a service, such as the shim's of the guest agent) also:
  - `protocol <Pkg>_<Service>Calls`: the calls without transport details, the seam that tests fake;
  - `struct <Pkg>_<Service>Session`: those calls over a TTRPCClient, each with its deadline policy.

An rpc may carry annotations in a comment line right above it, `// @ttrpc <word> [<word> ...]`:
  no-deadline    the Session's call has no deadline (the rpc waits by design: an exit, output);
                 every other call gets the Session's `callTimeout`.
  raw-handler    the Service method works on the encoded payloads (ByteBuffer in, TTRPCReplyPayload
                 out: the reply in parts, sent without joining them), for a server that encodes
                 its reply itself.
  raw-reply      the Calls method returns the encoded reply, for a caller that decodes it within
                 bounds of its own (an untrusted peer decides how many entries a list holds).

Usage: gen-ttrpc-services.py [--calls] OUT.swift FILE.proto [FILE.proto ...]
"""
import re
import sys

ANNOTATIONS = {"no-deadline", "raw-handler", "raw-reply"}

def swift_type(name, package):
    if "." not in name:
        name = f"{package}.{name}"
    parts = name.split(".")
    pkg = "_".join(p[:1].upper() + p[1:] for p in parts[:-1])
    return f"{pkg}_{parts[-1]}"

def lower_first(name):
    return name[:1].lower() + name[1:]

def parse(path):
    """The package and its services: [(name, [(rpc, request, response, {annotations})])]."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    services = []
    for match in re.finditer(r"service\s+(\w+)\s*\{(.*?)\n\}", text, re.S):
        rpcs, pending = [], set()
        for line in match.group(2).splitlines():
            annotation = re.match(r"\s*//\s*@ttrpc\s+(.*)$", line)
            if annotation:
                words = set(annotation.group(1).split())
                unknown = words - ANNOTATIONS
                if unknown:
                    sys.exit(f"{path}: unknown @ttrpc annotation(s) {sorted(unknown)}")
                pending |= words
                continue
            line = re.sub(r"//.*", "", line)
            rpc = re.match(r"\s*rpc\s+(\w+)\s*\(\s*([\w.]+)\s*\)\s*returns\s*\(\s*([\w.]+)\s*\)", line)
            if rpc:
                rpcs.append((rpc.group(1), rpc.group(2), rpc.group(3), pending))
                pending = set()
        if pending:
            sys.exit(f"{path}: @ttrpc {sorted(pending)} is not followed by an rpc")
        services.append((match.group(1), rpcs))
    return package, services

def emit_service(package, service, rpcs):
    full = f"{package}.{service}"
    prefix = swift_type(service, package)
    out = [f"/// `{full}`: implement this to serve it over ttrpc.",
           f"public protocol {prefix}Service: Sendable {{"]
    for name, req, res, notes in rpcs:
        if "raw-handler" in notes:
            out.append(f"    /// `{name}` on encoded payloads: a {swift_type(req, package)} in, a {swift_type(res, package)} out.")
            out.append(f"    func {lower_first(name)}(raw payload: ByteBuffer, context: TTRPCCallContext) async throws -> TTRPCReplyPayload")
        else:
            out.append(f"    func {lower_first(name)}(_ request: {swift_type(req, package)}, context: TTRPCCallContext) async throws -> {swift_type(res, package)}")
    out += ["}", "",
            f"/// `{full}` on the wire: its name and its methods, in the order the proto declares them.",
            f"public enum {prefix}Wire {{",
            f"    public static let serviceName = \"{full}\"",
            "    public static let methodNames = [" + ", ".join(f"\"{name}\"" for name, *_ in rpcs) + "]",
            "    /// The methods that wait by design (`no-deadline`): their time is waiting, not latency.",
            "    public static let waitingMethods: Set<String> = [" + ", ".join(f"\"{name}\"" for name, _, _, notes in rpcs if "no-deadline" in notes) + "]",
            "}",
            "",
            f"extension {prefix}Service {{",
            "    /// The service name on the wire.",
            f"    public static var ttrpcServiceName: String {{ {prefix}Wire.serviceName }}",
            "",
            f"    /// Registers every method of `{full}` for a TTRPCServer.",
            "    public var serviceDefinition: TTRPCServiceDefinition {",
            f"        var service = TTRPCServiceDefinition(name: \"{full}\")"]
    for name, req, res, notes in rpcs:
        if "raw-handler" in notes:
            out.append(f"        service.addGatheringMethod(\"{name}\") {{ payload, context in")
            out.append(f"            try await self.{lower_first(name)}(raw: payload, context: context)")
        else:
            out.append(f"        service.addMethod(\"{name}\") {{ (request: {swift_type(req, package)}, context) in")
            out.append(f"            try await self.{lower_first(name)}(request, context: context)")
        out.append("        }")
    out += ["        return service", "    }", "}", "",
            f"/// Typed calls to `{full}` over a ttrpc connection.",
            f"public struct {prefix}Client: Sendable {{",
            "    public let connection: TTRPCClient",
            "",
            "    public init(_ connection: TTRPCClient) { self.connection = connection }"]
    for name, req, res, notes in rpcs:
        out += ["",
                f"    public func {lower_first(name)}(",
                f"        _ request: {swift_type(req, package)}, metadata: TTRPCMetadata = [:], timeout: Duration? = nil",
                f"    ) async throws -> {swift_type(res, package)} {{",
                "        try await connection.call(",
                f"            service: \"{full}\", method: \"{name}\", request: request,",
                f"            responseType: {swift_type(res, package)}.self, metadata: metadata, timeout: timeout)",
                "    }"]
    out.append("}")
    return out

def emit_calls(package, service, rpcs):
    full = f"{package}.{service}"
    prefix = swift_type(service, package)
    def result(res, notes):
        return "ByteBuffer" if "raw-reply" in notes else swift_type(res, package)
    out = ["",
           f"/// The calls a client makes to `{full}`, without transport details: what tests fake.",
           f"public protocol {prefix}Calls: Sendable {{"]
    for name, req, res, notes in rpcs:
        if "raw-reply" in notes:
            out.append(f"    /// The encoded {swift_type(res, package)}: the caller decodes it within bounds of its own.")
        out.append(f"    func {lower_first(name)}(_ request: {swift_type(req, package)}) async throws -> {result(res, notes)}")
    out += ["}", "",
            f"/// `{full}` over a ttrpc connection. Every call carries `callTimeout` as its deadline, but",
            "/// the ones that wait by design (" + ", ".join(name for name, _, _, notes in rpcs if "no-deadline" in notes) + "), which end with the connection.",
            f"public struct {prefix}Session: {prefix}Calls {{",
            "    public let connection: TTRPCClient",
            "    public let callTimeout: Duration",
            "",
            "    public init(_ connection: TTRPCClient, callTimeout: Duration) {",
            "        self.connection = connection",
            "        self.callTimeout = callTimeout",
            "    }"]
    for name, req, res, notes in rpcs:
        timeout = "nil" if "no-deadline" in notes else "callTimeout"
        out += ["", f"    public func {lower_first(name)}(_ request: {swift_type(req, package)}) async throws -> {result(res, notes)} {{"]
        if "raw-reply" in notes:
            out += [f"        try await connection.call(",
                    f"            service: \"{full}\", method: \"{name}\", payload: try request.serializedBuffer(), timeout: {timeout})"]
        else:
            out += [f"        try await connection.call(",
                    f"            service: \"{full}\", method: \"{name}\", request: request,",
                    f"            responseType: {swift_type(res, package)}.self, timeout: {timeout})"]
        out.append("    }")
    out.append("}")
    return out

def main():
    arguments = sys.argv[1:]
    calls = arguments[:1] == ["--calls"]
    if calls:
        arguments = arguments[1:]
    out_path, protos = arguments[0], arguments[1:]
    chunks = []
    needs_nio = False
    for proto in protos:
        package, services = parse(proto)
        for service, rpcs in services:
            lines = emit_service(package, service, rpcs)
            if calls:
                lines += emit_calls(package, service, rpcs)
            needs_nio |= any(notes & {"raw-handler", "raw-reply"} for *_, notes in rpcs)
            chunks.append("\n".join(lines))
    header = ("// DO NOT EDIT. Generated by scripts/gen-ttrpc-services.py from the service definitions in\n"
              "// " + ", ".join(p.split("/")[-1] for p in protos) + ".\n\n"
              + ("import NIOCore\n" if needs_nio else "") + "import SwiftProtobuf\nimport TTRPC\n")
    with open(out_path, "w") as f:
        f.write(header + "\n" + "\n\n".join(chunks) + "\n")

if __name__ == "__main__":
    main()
