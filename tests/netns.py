"""Test hosts in network namespaces: a bridge in a namespace of its own (the switch), one
namespace per host on a veth pair into it, and a leg for the test process itself. A host
can then be cut off (its switch port down: a partition) and joined again, which killing
a process on loopback cannot show. Addresses are private (10.x.y.0/24) and live only in
the namespaces and on the leg this harness makes; everything is removed at teardown.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode().strip()}")


class Network:
    """A switch and the hosts on it."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.{100 + secrets.randbelow(100)}.{secrets.randbelow(250)}"
        self.switch = f"lmr{self.tag}sw"
        self.hosts: dict[str, tuple[str, str, str]] = {}  # name -> (ns, address, port)
        self.root_leg = f"lmr{self.tag}r"
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        peer = f"lmr{self.tag}pr"
        _ip("link", "add", self.root_leg, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", peer, "master", "br0")
        _ip("-n", self.switch, "link", "set", peer, "up")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.root_leg)
        _ip("link", "set", self.root_leg, "up")

    def host(self, name: str) -> str:
        """A new host on the switch; returns its address."""
        n = len(self.hosts) + 1
        ns, port = f"lmr{self.tag}h{n}", f"lmr{self.tag}s{n}"
        address = f"{self.subnet}.{n}"
        _ip("netns", "add", ns)
        _ip("link", "add", f"lmr{self.tag}v{n}", "type", "veth", "peer", "name", port)
        _ip("link", "set", f"lmr{self.tag}v{n}", "netns", ns)
        _ip("link", "set", port, "netns", self.switch)
        _ip("-n", ns, "link", "set", f"lmr{self.tag}v{n}", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")
        self.hosts[name] = (ns, address, port)
        return address

    def wrap(self, name: str) -> tuple[str, ...]:
        """The prefix that runs a command on host ``name``."""
        return ("ip", "netns", "exec", self.hosts[name][0])

    def cut(self, name: str) -> None:
        """Partition: host ``name`` can reach nothing, nothing can reach it."""
        _ip("-n", self.switch, "link", "set", self.hosts[name][2], "down")

    def heal(self, name: str) -> None:
        """Join host ``name`` to the network again."""
        _ip("-n", self.switch, "link", "set", self.hosts[name][2], "up")

    def remove(self) -> None:
        """Delete every namespace (their veths go with them) and the test's own leg."""
        for ns, _, _ in self.hosts.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.root_leg], capture_output=True, check=False)


@pytest.fixture
def network() -> Iterator[Network]:
    """A fresh network of test hosts; skips where namespaces cannot be made (not root, no
    iproute2): CI runs as root and installs iproute2."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 ('ip'); CI has both")
    try:
        net = Network()
    except RuntimeError as exc:
        pytest.skip(f"cannot make network namespaces here: {exc}")
    try:
        yield net
    finally:
        net.remove()
