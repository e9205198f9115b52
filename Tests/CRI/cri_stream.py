"""The client side of CRI's streaming Exec and PortForward: kubelet's remote-command and port-forward
protocols over a WebSocket (subprotocol `v4.channel.k8s.io`), enough for an exec with or without a TTY
that may be sent one piece of stdin, and for one request/reply exchange through a forwarded port.

Each binary frame's first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON
metav1.Status when the command ends). Frames from the server are unmasked; the client masks its own.
"""
import base64
import json
import os
import socket
import struct
import urllib.parse

PROTOCOL = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3


def _read_exactly(connection, count):
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise EOFError("stream closed mid-frame")
        data += chunk
    return data


def _frames(connection):
    """(opcode, payload) until the connection ends or a close frame arrives."""
    while True:
        try:
            first, second = _read_exactly(connection, 2)
        except EOFError:
            return
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", _read_exactly(connection, 2))
        elif length == 127:
            (length,) = struct.unpack(">Q", _read_exactly(connection, 8))
        mask = _read_exactly(connection, 4) if second & 0x80 else None
        payload = _read_exactly(connection, length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if opcode == 0x8:
            return
        yield opcode, payload


def _frame(payload):
    """A masked binary frame (client to server)."""
    mask = os.urandom(4)
    length = len(payload)
    header = bytes([0x82]) + (bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + struct.pack(">H", length))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _connect(url, timeout):
    """A WebSocket connection to a streaming URL, after the upgrade."""
    target = urllib.parse.urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target.path}{'?' + target.query if target.query else ''} HTTP/1.1\r\n"
        f"Host: {target.netloc}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {PROTOCOL}\r\n"
        f"Origin: http://{target.netloc}\r\n"
        "\r\n"
    )
    connection = socket.create_connection((target.hostname, target.port), timeout=timeout)
    connection.sendall(request.encode())
    header = b""
    while b"\r\n\r\n" not in header:
        chunk = connection.recv(1)
        if not chunk:
            connection.close()
            raise ConnectionError(f"no WebSocket handshake answer from {url}: {header!r}")
        header += chunk
    if b" 101 " not in header.split(b"\r\n", 1)[0] + b" ":
        connection.close()
        raise ConnectionError(f"WebSocket upgrade refused by {url}: {header.decode(errors='replace')}")
    return connection


def port_forward(url, port, request, timeout=60):
    """Sends `request` through a PortForward URL to `port` in the pod and returns (reply, error text):
    everything the pod's server sent until it closed the connection. Channel 0 carries the data,
    channel 1 errors; the first frame on each names the port (2 bytes, little endian)."""
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    reply, error, announced = b"", b"", set()
    with _connect(f"{url}{separator}port={port}", timeout) as connection:
        connection.sendall(_frame(bytes([0]) + request))
        for opcode, payload in _frames(connection):
            if opcode not in (0x1, 0x2) or not payload:
                continue
            channel, data = payload[0], payload[1:]
            if channel not in announced:
                announced.add(channel)
                if data[:2] != struct.pack("<H", port):
                    raise ConnectionError(f"channel {channel} announced port {data[:2]!r}, not {port}")
                data = data[2:]
            if channel == 0:
                reply += data
            elif channel == 1:
                error += data
    return reply, error.decode(errors="replace")


def run(url, send_after=None, send_first=None, timeout=60):
    """Connects to an Exec or Attach URL and collects the output. With send_after=(marker, data), `data`
    is written to stdin once `marker` has appeared on stdout; `send_first` is written to stdin at once.
    Returns (stdout bytes, stderr bytes, exit code: 0, the ExitCode cause, or None if unknown)."""
    with _connect(url, timeout) as connection:
        output = {STDOUT: b"", STDERR: b"", ERROR: b""}
        if send_first:
            connection.sendall(_frame(bytes([STDIN]) + send_first))
        for opcode, payload in _frames(connection):
            if opcode in (0x1, 0x2) and payload and payload[0] in output:
                output[payload[0]] += payload[1:]
            if send_after and send_after[0] in output[STDOUT]:
                connection.sendall(_frame(bytes([STDIN]) + send_after[1]))
                send_after = None
    return output[STDOUT], output[STDERR], _exit_code(output[ERROR])


def _exit_code(error):
    if not error:
        return None
    status = json.loads(error)
    if status.get("status") == "Success":
        return 0
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    raise RuntimeError(f"exec failed: {status.get('message', error)}")
