"""A real local Ray cluster for the tests and the benchmark: ``ray start`` on loopback addresses, stopped by pid.

The head runs on 127.0.0.2 and each worker node on 127.0.0.3, 127.0.0.4...: each node is its own raylet with
its own address (Ray's protocol between them is the real one), all on the loopback network, so nothing
leaves the machine. (Ray replaces 127.0.0.1 itself by the machine's network address; other 127/8 addresses
it keeps.) :meth:`LocalRayCluster.stop` ends exactly the processes this cluster started (found by their session
directory and their parents), never other Ray clusters on the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["LocalRayCluster", "RayNode"]

_RAY = str(Path(sys.executable).parent / "ray")


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _agent_port_files(start_pid: int, stop: threading.Event, patience_s: float = 8.0) -> None:
    """Write the agents' port files for the raylet when its agents are slow to start.

    Ray 2.60's raylet waits a fixed 15 s for its agents (Python processes) to write their ports into the
    session directory, then aborts (ray-project/ray#65983). On a heavily loaded machine the agents take longer
    just to import. The ports are fixed on the command line, so after ``patience_s`` the files an agent has not
    written yet are written here with the values it will write itself (-1 for the agent's HTTP port: this
    install has no dashboard HTTP server, as the agent itself records).
    """
    seen_at: float | None = None
    while not stop.wait(0.2):
        try:
            raylets = [p for p in psutil.Process(start_pid).children(recursive=True)
                       if p.name() == "raylet" or (p.cmdline() or [""])[0].endswith("/raylet")]
        except psutil.NoSuchProcess:
            return
        if not raylets:
            continue
        seen_at = seen_at or time.monotonic()
        if time.monotonic() - seen_at < patience_s:
            continue
        try:
            args = dict(a[2:].split("=", 1) for a in raylets[0].cmdline() if a.startswith("--") and "=" in a)
        except psutil.NoSuchProcess:
            return
        session, node_id = Path(args["session_dir"]), args["node_id"]
        values = {"metrics_agent_port": args.get("metrics-agent-port"), "metrics_export_port":
                  args.get("metrics_export_port"), "runtime_env_agent_port": args.get("runtime_env_agent_port"),
                  "dashboard_agent_listen_port": "-1"}
        for name, value in values.items():
            target = session / f"{name}_{node_id}"
            if value and not target.exists():
                tmp = session / f".{name}_{node_id}.tmp"
                tmp.write_text(str(value))
                os.replace(tmp, target)
        return


@dataclass
class RayNode:
    """One ``ray start`` of the cluster: its address, CPUs and extra environment (``env``)."""

    ip: str
    cpus: float
    env: dict[str, str] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)


@dataclass
class LocalRayCluster:
    """A head and worker nodes started with ``ray start`` on this machine.

    Args:
        temp_dir: Ray's temporary folder for this cluster (its session directory lives there).
        head_cpus: CPUs the head offers to workers (0: the head runs no model, as on the lead's machine).
        object_store_mb: Object store size per node.
    """

    temp_dir: Path
    head_cpus: float = 0
    object_store_mb: int = 100
    address: str = ""
    nodes: list[RayNode] = field(default_factory=list)

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness="0", **extra)
        env.pop("RAY_ADDRESS", None)
        return env

    def _ray_start(self, node: RayNode, args: list[str], *, tries: int = 4) -> None:
        # Under heavy load the raylet may give up waiting for its agents (a fixed ~15 s): try again.
        for attempt in range(1, tries + 1):
            ports = _free_ports(5)
            cmd = [_RAY, "start", f"--node-ip-address={node.ip}", f"--num-cpus={node.cpus:g}", "--num-gpus=0",
                   "--disable-usage-stats", f"--object-store-memory={self.object_store_mb * 1_000_000}",
                   f"--dashboard-agent-grpc-port={ports[0]}", f"--dashboard-agent-listen-port={ports[1]}",
                   f"--runtime-env-agent-port={ports[2]}", f"--metrics-export-port={ports[3]}",
                   f"--node-manager-port={ports[4]}", *args]
            before = self._session_pids()
            proc = subprocess.Popen(cmd, env=self._env(node.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            stop = threading.Event()
            helper = threading.Thread(target=_agent_port_files, args=(proc.pid, stop), daemon=True)
            helper.start()
            try:
                _, stderr = proc.communicate(timeout=300)
            finally:
                stop.set()
                helper.join(5)
            node.pids |= self._session_pids() - before
            if proc.returncode == 0:
                return
            self._kill(node.pids)
            node.pids.clear()
            if attempt == tries:
                raise RuntimeError(f"ray start failed {tries} times on {node.ip}:\n{stderr[-2000:]}")
            time.sleep(2)

    def start_head(self, *, env: dict[str, str] | None = None) -> str:
        """Start the head node on 127.0.0.2; returns the cluster's address (``HOST:PORT``)."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        node = RayNode("127.0.0.2", self.head_cpus, dict(env or {}))
        port = _free_ports(1)[0]
        self.nodes.append(node)
        self._ray_start(node, ["--head", f"--port={port}", "--include-dashboard=false",
                               f"--dashboard-port={_free_ports(1)[0]}", f"--temp-dir={self.temp_dir}"])
        self.address = f"127.0.0.2:{port}"
        return self.address

    def add_node(self, cpus: float, *, env: dict[str, str] | None = None) -> RayNode:
        """Start a worker node (a workstation) on the next loopback address; ``env`` reaches its workers."""
        node = RayNode(f"127.0.0.{len(self.nodes) + 2}", cpus, dict(env or {}))
        self.nodes.append(node)
        self._ray_start(node, [f"--address={self.address}"])
        return node

    def _session_pids(self) -> set[int]:
        """Processes of this cluster: those naming its temp dir, and all their descendants."""
        mark = str(self.temp_dir)
        roots = set()
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(mark in part for part in p.info["cmdline"] or []):
                    roots.add(p.info["pid"])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        out = set(roots)
        for pid in roots:
            try:
                out |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                continue
        return out

    def node_pids(self, node: RayNode) -> set[int]:
        """The live processes of one node (its raylet, agents and worker processes)."""
        self.refresh()
        return {pid for pid in node.pids if psutil.pid_exists(pid)}

    def refresh(self) -> None:
        """Attribute new processes (worker processes started since) to their node, through their raylet."""
        for node in self.nodes:
            for pid in list(node.pids):
                try:
                    node.pids |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
                except psutil.NoSuchProcess:
                    continue

    def worker_pids(self, node: RayNode, name: str) -> list[int]:
        """Worker processes of ``node`` whose title starts with ``ray::NAME`` (actors of that class)."""
        out = []
        for pid in self.node_pids(node):
            try:
                title = " ".join(psutil.Process(pid).cmdline())
            except psutil.NoSuchProcess:
                continue
            if title.startswith(f"ray::{name}"):
                out.append(pid)
        return sorted(out)

    def stop_node(self, node: RayNode) -> None:
        """Kill a node at once (a power cut): every process of it, with SIGKILL."""
        self._kill(self.node_pids(node), grace_s=0)

    @staticmethod
    def _kill(pids: set[int], grace_s: float = 5.0) -> None:
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        if grace_s:
            for p in procs:
                try:
                    p.terminate()
                except psutil.NoSuchProcess:
                    pass
            _, procs = psutil.wait_procs(procs, timeout=grace_s)
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=5)

    def stop(self) -> None:
        """Stop every process of this cluster (and only those)."""
        self.refresh()
        pids = self._session_pids()
        for node in self.nodes:
            pids |= node.pids
        self._kill({p for p in pids if p != os.getpid()})
