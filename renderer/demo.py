"""`kubestash demo`: kubestash against local stand-ins, with nothing to set up.

Starts moto_server and the Kubernetes API test server on 127.0.0.1 (free ports), fills a
credstash table through the credstash library, then runs the service (or, without service
mode, one sync) with DRY_RUN=false. Ctrl-C stops everything the demo started.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from renderer.settings import Settings
from renderer.testing.aws import CredstashStore, MotoServer, free_port
from renderer.testing.process import ServerProcess

NAMESPACES = ("demo", "payments", "web")
DEMO_API_KEY = "demo-render-key"

# Fake values for the demo table; kubestash itself never prints them.
SEED = (
    ("demo/app-config/DB_HOST", "db.demo.internal"),
    ("demo/app-config/db.password", "first-password"),
    ("demo/app-config/db.password", "second-password"),
    ("demo/app-config/api-key.v2", "demo-api-key"),
    ("demo/app-config/a&b", "ampersand-value"),
    ("demo/app-config/feature-flags", "beta,dark-mode"),
    ("payments/stripe/API_KEY", "sk_test_demo"),
    ("payments/stripe/webhook-secret", "whsec_demo"),
    ("web/tls.extra/PASSWORD", "dotted-secret-name"),
    ("demo/Bad_Name/KEY", "invalid secret name"),
    ("plainname", "not for kubestash"),
    ("app/prod/db/password", "four parts, not for kubestash"),
    ("kube-system/x/KEY", "excluded namespace"),
    ("absent/app/KEY", "namespace does not exist"),
)
NOTES = (
    "demo/app-config: 5 keys; db.password has two versions and the second wins",
    "demo/app-config also has MANUAL_NOTE, added by hand before the sync: it stays",
    "payments/stripe: 2 keys; web/tls.extra: a Secret name with a dot",
    "demo/Bad_Name/KEY is invalid (upper-case Secret name): reported, never written",
    "plainname and app/prod/db/password are ignored (not namespace/secret/KEY)",
    "kube-system/x/KEY is excluded by NAMESPACE_EXCLUDE_FILTER",
    "absent/app/KEY names a namespace that does not exist: skipped and reported",
)


class KubeAPIProcess(ServerProcess):
    """The Kubernetes API test server as a subprocess, writing a kubeconfig for kubectl."""

    name = "the Kubernetes API test server"

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__()
        self.kubeconfig = kubeconfig
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> KubeAPIProcess:
        command = [sys.executable, "-m", "renderer.testing.kubeapi"]
        command += ["--port", str(self.port), "--kubeconfig", str(self.kubeconfig)]
        self.launch(command, f"{self.url}/version", timeout=timeout, ready=self.kubeconfig.exists)
        return self


def seed(store: CredstashStore) -> None:
    for name, value in SEED:
        store.put(name, value)


def prepare_cluster(settings: Settings, kubeconfig: Path) -> None:
    """Create the demo namespaces and a hand-made key in one Secret kubestash will manage."""
    from renderer.kube import KubeClient

    kube = KubeClient(settings, kubeconfig=str(kubeconfig))
    for namespace in NAMESPACES:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        kube.request("create", "POST", "/api/v1/namespaces", body=body)
    manual = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-config", "namespace": "demo"},
        "type": "Opaque",
        "stringData": {"MANUAL_NOTE": "added by hand"},
    }
    # Written under a field manager of its own, as a person with kubectl would, so that
    # managedFields show kubestash owning only the table's keys.
    kube.request(
        "create",
        "POST",
        "/api/v1/namespaces/demo/secrets",
        query={"fieldManager": "kubectl-create"},
        body=manual,
    )
    kube.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, *, once: bool = False) -> int:
    """Run the demo until Ctrl-C or SIGTERM, or for one sync with `once`; return the exit code."""
    # SIGTERM takes the Ctrl-C path, so the servers the demo started are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="kubestash-demo-"))
    kubeconfig = workdir / "kubeconfig"
    moto = MotoServer(region=settings.table_region)
    kubeapi = KubeAPIProcess(kubeconfig)
    try:
        moto.start()
        kubeapi.start()
        os.environ.update(moto.env())
        os.environ["KUBECONFIG"] = str(kubeconfig)
        store = CredstashStore(moto, settings.ddb_table).create()
        seed(store)
        port = settings.port if "PORT" in os.environ else free_port()
        demo_settings = settings.replace(
            dry_run=False,
            port=port,
            wait_time=min(settings.wait_time, 2.0),
            api_key=settings.api_key or DEMO_API_KEY,
        )
        prepare_cluster(demo_settings, kubeconfig)
        print_intro(demo_settings, moto, kubeapi, kubeconfig, store)
        return run_kubestash(demo_settings, once=once)
    except KeyboardInterrupt:
        return 0
    finally:
        print("\nStopping the demo servers.", flush=True)
        kubeapi.stop()
        moto.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_intro(
    settings: Settings,
    moto: MotoServer,
    kubeapi: KubeAPIProcess,
    kubeconfig: Path,
    store: CredstashStore,
) -> None:
    lines = [
        "kubestash demo",
        f"  moto_server (DynamoDB, Streams, KMS): {moto.url}",
        f"  Kubernetes API test server: {kubeapi.url}",
        f"  credstash table {store.table} in {store.region}, filled with the credstash library:",
        *(f"    - {note}" for note in NOTES),
        f"  namespaces created: {', '.join(NAMESPACES)}",
        "",
        "Look at the result with:",
        f"  kubectl --kubeconfig {kubeconfig} get secrets -A "
        "-l app.kubernetes.io/managed-by=kubestash",
        f"  kubectl --kubeconfig {kubeconfig} get secret app-config -n demo -o yaml",
        "Force a full sync through the API (the demo's key is shown because it is a demo):",
        f"  curl -s -X POST -H 'Authorization: Bearer {settings.api_key}' "
        f"'http://127.0.0.1:{settings.port}/render?wait=true'",
        "Add a key and watch it arrive through the stream:",
        f"  AWS_ENDPOINT_URL={moto.url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"credstash -r {store.region} -t {store.table} put demo/app-config/NEW_KEY value",
    ]
    print("\n".join(lines), flush=True)


def run_kubestash(settings: Settings, *, once: bool) -> int:
    if not once:
        from renderer import service

        print(
            f"\nRunning the service; status page http://127.0.0.1:{settings.port}/ . "
            "Ctrl-C stops the demo.",
            flush=True,
        )
        return service.run(settings, host="127.0.0.1")

    from renderer.sync import Syncer

    result = Syncer(settings).full_sync(trigger="demo")
    print("\n" + result.summary_text(), flush=True)
    return result.exit_code
