"""A real 3-master Redis Cluster on loopback ports, started from the machine's redis-server for
the tests that need one, and stopped by them. No replicas: a test that restarts a master sees
its slots unserved until it is back, as a cluster without failover would."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from tests.servers import Spool, running_spool

MASTERS = 3


def _free_port_pair() -> int:
    """A free port P whose cluster bus port P + 10000 is free too (so P <= 55535)."""
    while True:
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@dataclass
class Node:
    port: int
    directory: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        # The cluster config file survives a restart (the node keeps its id and its slots); the
        # data does not: no RDB, no AOF, like the single Redis of the other fault tests.
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        with (self.directory / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _wait(self._up, f"redis-server on {self.port}")

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on {self.port} exited: see {self.directory}/redis.log")
        return bool(redis.Redis(port=self.port).ping())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Cluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def env(self) -> dict[str, str]:
        """What points a Spool process's chunk log at this cluster."""
        return {"SPOOL_CHUNKLOG_REDIS_URL": self.url, "SPOOL_CHUNKLOG_REDIS_CLUSTER": "1"}

    def node_of(self, key: str) -> Node:
        """The master that serves `key`'s slot."""
        slot = key_slot(key.encode())
        for start, end, master, *_ in redis.Redis(port=self.nodes[0].port).execute_command(
            "CLUSTER", "SLOTS"
        ):
            if start <= slot <= end:
                return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(f"no node serves slot {slot}")

    def node_client(self, node: Node) -> redis.Redis:
        """A plain client of one node: what it holds, whatever slots it serves."""
        return redis.Redis(port=node.port)

    def wait_ok(self) -> None:
        def ok() -> bool:
            return all(
                b"cluster_state:ok" in redis.Redis(port=n.port).execute_command("CLUSTER", "INFO")
                for n in self.nodes
            )

        _wait(ok, "cluster_state:ok on every node")

    def restart(self, node: Node) -> None:
        """SIGKILL one master and start it again, empty, with its slots."""
        node.kill()
        node.start()
        self.wait_ok()

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _wait(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def start_cluster(base: Path) -> Cluster:
    cluster = Cluster()
    try:
        for _ in range(MASTERS):
            port = _free_port_pair()
            directory = base / str(port)
            directory.mkdir()
            node = Node(port, directory)
            cluster.nodes.append(node)
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A fresh 3-master Redis Cluster for this test session."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("the cluster tests need redis-server and redis-cli on PATH")
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster_spool(redis_cluster, django_db_setup, django_db_blocker, tmp_path_factory) -> Spool:
    """A Spool (web + worker) whose chunk log, wake-ups and limits are on the Redis Cluster; its
    broker stays on the test Redis."""
    logs = tmp_path_factory.mktemp("cluster-spool-logs")
    with running_spool(django_db_blocker, logs, **redis_cluster.env()) as running:
        yield running
