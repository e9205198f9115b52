"""The install's containerd config merge (packaging/containerd-config.py) against a real containerd.

Each case starts from a config a node really has — Debian's stock file (a CRI table, no runtimes),
containerd's full default (`containerd config default`), a file with runc options and another
handler, and no file at all — merges swiftkata's handler into a copy, starts a private containerd on
the result and asks it: the CRI plugin must load, and CRI's runtime config (Status, verbose) must
list both runc and kata-runtime with their runtime types. The unmerged stock file plus a bare
kata-runtime block, what the install appended before, is the control: containerd's CRI plugin fails
on it, so the test would catch the old behaviour. Independent of CRI_RUNTIME_HANDLER.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

import cri_subset_pb2 as pb
from cri_client import CRIClient
from polling import wait_for

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MERGE = os.path.join(REPO_ROOT, "packaging", "containerd-config.py")
DEBIAN_STOCK = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
WITH_RUNC_OPTIONS = """version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.other]
    runtime_type = "io.containerd.runc.v2"
"""
OLD_APPENDED_BLOCK = """
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
  runtime_type = "io.containerd.swiftkata.v2"
"""


def lacks_cap_sys_resource():
    with open("/proc/self/status") as f:
        effective = next(line.split()[1] for line in f if line.startswith("CapEff:"))
    return not (int(effective, 16) >> 24) & 1


class ContainerdConfigMergeTests(unittest.TestCase):
    def setUp(self):
        self.directory = f"/tmp/swiftkata-config-merge-{os.getpid()}"
        shutil.rmtree(self.directory, ignore_errors=True)
        os.makedirs(self.directory)
        self.process = None
        self.log = None
        self.addCleanup(self.tearDownContainerd)

    def tearDownContainerd(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log:
            self.log.close()
        subprocess.run(["umount", "-R", "-l", f"{self.directory}/root"], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.directory, ignore_errors=True)

    def merged(self, text):
        path = f"{self.directory}/config.toml"
        if text is not None:
            with open(path, "w") as f:
                f.write(text)
        flags = ["--needs-restrict-oom-score-adj"] if lacks_cap_sys_resource() else []
        first = subprocess.run([sys.executable, MERGE, "merge", path, *flags], capture_output=True, text=True)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(first.stdout.strip(), "changed")
        again = subprocess.run([sys.executable, MERGE, "merge", path, *flags], capture_output=True, text=True)
        self.assertEqual(again.stdout.strip(), "unchanged", "a second merge must change nothing")
        return path

    def start_containerd(self, config):
        socket = f"{self.directory}/containerd.sock"
        self.log = open(f"{self.directory}/containerd.log", "w")
        self.process = subprocess.Popen(
            ["/usr/bin/containerd", "--config", config, "--address", socket, "--root", f"{self.directory}/root",
             "--state", f"{self.directory}/state"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(socket), 30, "containerd's socket")
        return socket

    def cri_plugin_status(self, socket):
        def probe():
            listing = subprocess.run(["/usr/bin/ctr", "--address", socket, "plugins", "ls"], capture_output=True, text=True)
            for line in listing.stdout.splitlines():
                fields = line.split()
                if len(fields) >= 4 and fields[0] == "io.containerd.grpc.v1" and fields[1] == "cri":
                    return fields[3]
            return None
        return wait_for(probe, 30, "containerd's plugin list")

    def runtimes(self, socket):
        client = CRIClient(socket)
        try:
            client.wait_ready()
            info = client.Status(pb.StatusRequest(verbose=True)).info
            return json.loads(info["config"])["containerd"]["runtimes"]
        finally:
            client.close()

    def assert_both_handlers(self, config, expect_runc_options=False, extra_handlers=()):
        socket = self.start_containerd(config)
        with open(f"{self.directory}/containerd.log") as log:
            self.assertEqual(self.cri_plugin_status(socket), "ok", log.read()[-2000:])
        runtimes = self.runtimes(socket)
        self.assertEqual(runtimes["runc"]["runtimeType"], "io.containerd.runc.v2")
        self.assertEqual(runtimes["kata-runtime"]["runtimeType"], "io.containerd.swiftkata.v2")
        for handler in extra_handlers:
            self.assertIn(handler, runtimes)
        if expect_runc_options:
            self.assertEqual(runtimes["runc"]["options"], {"SystemdCgroup": False})

    def test_debian_stock_config(self):
        self.assert_both_handlers(self.merged(DEBIAN_STOCK))

    def test_containerd_full_default(self):
        default = subprocess.run(["/usr/bin/containerd", "config", "default"], capture_output=True, text=True, check=True).stdout
        self.assert_both_handlers(self.merged(default))

    def test_runc_options_and_another_handler_are_kept(self):
        self.assert_both_handlers(self.merged(WITH_RUNC_OPTIONS), expect_runc_options=True, extra_handlers=["other"])

    def test_no_config_at_all(self):
        self.assert_both_handlers(self.merged(None))

    def test_control_the_old_append_breaks_cri(self):
        path = f"{self.directory}/config.toml"
        with open(path, "w") as f:
            f.write(DEBIAN_STOCK + OLD_APPENDED_BLOCK)
        socket = self.start_containerd(path)
        self.assertEqual(self.cri_plugin_status(socket), "error")

    def test_a_handler_that_runs_something_else_is_refused_and_left(self):
        path = f"{self.directory}/config.toml"
        text = WITH_RUNC_OPTIONS + """  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
    runtime_type = "io.containerd.kata.v2"
"""
        with open(path, "w") as f:
            f.write(text)
        result = subprocess.run([sys.executable, MERGE, "merge", path], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("already runs 'io.containerd.kata.v2'", result.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), text, "a refused merge must not write")


if __name__ == "__main__":
    unittest.main()
