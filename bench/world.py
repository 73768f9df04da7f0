"""The benchmark's servers on 127.0.0.1: moto (counting) in a child, the Kubernetes API test
server in this process, and the request counters of both.

Each client of the benchmark runs with its own `AWS_SDK_UA_APP_ID`, which botocore appends
to the User-Agent as `app/NAME`, so the moto counts can be split by client: the writer that
puts new credstash versions is never counted as kubestash's work.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from bench import workload
from renderer.testing.kubeapi import KubeAPIServer

logger = logging.getLogger(__name__)

REGION = "us-east-1"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Counts:
    """Requests served so far: AWS by (client app id, operation), Kubernetes by (verb, resource)."""

    aws: Counter[tuple[str, str]] = field(default_factory=Counter)
    kube: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.aws - other.aws, self.kube - other.kube)


@dataclass
class Calls:
    """The calls of one client in one phase, in the units the results page reports."""

    aws: dict[str, int]
    kube: dict[str, int]

    @property
    def kms_decrypt(self) -> int:
        return self.aws.get("Decrypt", 0)

    @property
    def dynamodb_requests(self) -> int:
        return sum(count for op, count in self.aws.items() if op in DYNAMODB_OPERATIONS)

    @property
    def scan_pages(self) -> int:
        return self.aws.get("Scan", 0)

    @property
    def kube_requests(self) -> int:
        return sum(self.kube.values())

    @property
    def kube_writes(self) -> int:
        return sum(count for key, count in self.kube.items() if key.split()[0] in WRITE_VERBS)

    @property
    def secret_writes(self) -> int:
        return sum(count for key, count in self.kube.items() if key in WRITE_VERBS)

    def to_dict(self) -> dict:
        return {"aws": self.aws, "kube": self.kube}


DYNAMODB_OPERATIONS = {
    "Scan",
    "Query",
    "GetItem",
    "BatchGetItem",
    "DescribeTable",
    "DescribeStream",
    "ListStreams",
    "GetShardIterator",
    "GetRecords",
}


def calls_of(delta: Counts, app: str) -> Calls:
    """Select one client's AWS calls, and all Kubernetes calls by verb.

    Requests on Secrets are keyed by verb alone ("patch"); requests on other resources by
    verb and resource ("create events"), so that they are seen and counted as writes too.
    """
    aws = {op: count for (client, op), count in delta.aws.items() if client == app}
    kube: Counter[str] = Counter()
    for (verb, resource), count in delta.kube.items():
        kube[verb if resource == "secrets" else f"{verb} {resource}"] += count
    return Calls(aws, dict(kube))


class World:
    """Starts, resets and stops the servers; builds the environment of each child."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = workdir / "kubeconfig"
        self.moto: subprocess.Popen[str] | None = None
        self.moto_url = ""
        self.kube: KubeAPIServer | None = None

    def start(self) -> None:
        self.start_moto()
        self.kube = KubeAPIServer(port=0)
        self.kube.start()
        self.kube.write_kubeconfig(str(self.kubeconfig))
        self.reset_kube()

    def start_moto(self) -> None:
        """Start a fresh moto server (empty tables, a new KMS key alias/credstash)."""
        self.stop_moto()
        log = open(self.workdir / "moto.log", "w")
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "bench.motoserver", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        line = self.moto.stdout.readline() if self.moto.stdout else ""
        match = LISTENING.search(line)
        if not match:
            raise RuntimeError(f"moto server did not start; see {self.workdir / 'moto.log'}")
        self.moto_url = match[1]
        os.environ.update(self.env("bench"))
        workload.create_kms_key(self.session())

    def stop_moto(self) -> None:
        if self.moto is None:
            return
        self.moto.terminate()
        try:
            self.moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.moto.kill()
            self.moto.wait()
        self.moto = None

    def reset_kube(self) -> None:
        """Remove every object from the Kubernetes test server and create the namespaces."""
        assert self.kube is not None
        self.kube.reset()
        with httpx.Client(base_url=self.kube.url, timeout=30) as client:
            for namespace in workload.namespace_names():
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                client.post("/api/v1/namespaces", json=body).raise_for_status()

    def stop(self) -> None:
        self.stop_moto()
        if self.kube is not None:
            self.kube.stop()
            self.kube = None

    def env(self, app: str) -> dict[str, str]:
        """Return the environment of one client: endpoints, fake credentials, its app id."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_SDK_UA_APP_ID": app,
            "KUBECONFIG": str(self.kubeconfig),
            "TABLE_REGION": REGION,
        }

    def child_env(self, app: str, **extra: str) -> dict[str, str]:
        env = {**os.environ, **self.env(app), **extra}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        return env

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=REGION)

    def snapshot(self) -> Counts:
        return Counts(self._aws_counts(), self._kube_counts())

    def _aws_counts(self) -> Counter[tuple[str, str]]:
        response = httpx.get(f"{self.moto_url}/_bench/requests", timeout=30)
        response.raise_for_status()
        counts: Counter[tuple[str, str]] = Counter()
        for key, count in response.json().items():
            app, _, target = key.partition(" ")
            counts[(app, target.rpartition(".")[2])] += count
        return counts

    def _kube_counts(self) -> Counter[tuple[str, str]]:
        assert self.kube is not None
        counts: Counter[tuple[str, str]] = Counter()
        for request in list(self.kube.requests):
            counts[(request.verb, request.resource)] += 1
        return counts


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
