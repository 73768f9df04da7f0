"""Build argocd/deploy with kubectl kustomize and check what the cluster would receive."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renderer.settings import OPTIONS, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "argocd" / "deploy"
KUBERNETES_VERSIONS = ["1.29.0", "1.30.0", "1.31.0"]

# kubernetes-validate has schemas for the built-in kinds only. These two come from the
# Prometheus Operator CRDs, so they are skipped rather than validated.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed"
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize(DEPLOY)


@pytest.fixture(scope="module")
def overlay_objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    overlay = tmp_path_factory.mktemp("overlay")
    base = os.path.relpath(DEPLOY, overlay)
    kustomization = {"namespace": "secrets-sync", "resources": [base]}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(overlay)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    if name is not None:
        matches = [obj for obj in matches if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def pod_environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Return the environment a pod would get, with downward API fields filled in."""
    configmap = find(objects, "ConfigMap")
    environment = dict(configmap["data"])
    downward = {"metadata.name": "kubestash-5d8f9-abcde", "metadata.namespace": "secrets-sync"}
    for variable in container(objects)["env"]:
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif "fieldRef" in variable.get("valueFrom", {}):
            environment[variable["name"]] = downward[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    return environment


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_pass_strict_validation(objects: list[dict[str, Any]], version: str) -> None:
    errors = []
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")

    assert errors == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_only_crd_kinds_lack_a_schema(objects: list[dict[str, Any]], version: str) -> None:
    without_schema = set()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(obj["kind"])

    assert without_schema == CRD_KINDS


def test_strict_validation_rejects_typo(objects: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(find(objects, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["runAsUser"] = 10001

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_no_object_names_a_namespace(objects: list[dict[str, Any]]) -> None:
    with_namespace = [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in objects
        if "namespace" in obj["metadata"]
    ]

    assert with_namespace == []


def test_overlay_namespace_reaches_binding_subjects(
    overlay_objects: list[dict[str, Any]],
) -> None:
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        subjects = find(overlay_objects, kind)["subjects"]
        assert [subject["namespace"] for subject in subjects] == ["secrets-sync"]


def test_overlay_namespace_reaches_namespaced_objects(
    overlay_objects: list[dict[str, Any]],
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in overlay_objects:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == "secrets-sync", obj["kind"]


def test_cluster_role_verbs(objects: list[dict[str, Any]]) -> None:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in find(objects, "ClusterRole")["rules"]:
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])

    assert granted == {
        ("", "secrets"): {"get", "list", "watch", "create", "patch", "delete"},
        ("", "namespaces"): {"list"},
        ("", "events"): {"create", "patch"},
    }


def test_lease_role_is_limited_to_the_lease(objects: list[dict[str, Any]]) -> None:
    rules = find(objects, "Role")["rules"]
    lease_name = find(objects, "ConfigMap")["data"]["LEASE_NAME"]

    assert rules == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease_name],
            "verbs": ["get", "update"],
        },
    ]


def test_bindings_name_the_service_account(objects: list[dict[str, Any]]) -> None:
    account = find(objects, "ServiceAccount")["metadata"]["name"]
    deployment = find(objects, "Deployment")

    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = find(objects, kind)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
        assert binding["roleRef"]["name"] == find(objects, role_kind)["metadata"]["name"]


def test_service_account_has_irsa_placeholder(objects: list[dict[str, Any]]) -> None:
    annotations = find(objects, "ServiceAccount")["metadata"]["annotations"]

    assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


DEPLOYMENT_FIELDS = [
    ("spec.replicas", 2),
    ("spec.template.spec.securityContext.runAsNonRoot", True),
    ("spec.template.spec.securityContext.runAsUser", 10001),
    ("spec.template.spec.securityContext.seccompProfile.type", "RuntimeDefault"),
    ("container.securityContext.runAsNonRoot", True),
    ("container.securityContext.runAsUser", 10001),
    ("container.securityContext.readOnlyRootFilesystem", True),
    ("container.securityContext.allowPrivilegeEscalation", False),
    ("container.securityContext.capabilities.drop", ["ALL"]),
    ("container.securityContext.seccompProfile.type", "RuntimeDefault"),
    ("container.ports", [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
    ("container.livenessProbe.httpGet", {"path": "/healthz", "port": "http"}),
    ("container.readinessProbe.httpGet", {"path": "/readyz", "port": "http"}),
    ("container.startupProbe.httpGet", {"path": "/healthz", "port": "http"}),
    ("container.volumeMounts", [{"name": "tmp", "mountPath": "/tmp"}]),
    ("container.args", ["serve"]),
]


@pytest.mark.parametrize(
    ("path", "expected"), DEPLOYMENT_FIELDS, ids=[f[0] for f in DEPLOYMENT_FIELDS]
)
def test_deployment_field(objects: list[dict[str, Any]], path: str, expected: Any) -> None:
    value: Any = find(objects, "Deployment")
    parts = path.split(".")
    if parts[0] == "container":
        value = container(objects)
        parts = parts[1:]
    for part in parts:
        value = value[part]

    assert value == expected


def test_deployment_sets_resources(objects: list[dict[str, Any]]) -> None:
    resources = container(objects)["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_tmp_is_an_empty_dir(objects: list[dict[str, Any]]) -> None:
    volumes = find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]

    assert [volume["name"] for volume in volumes] == ["tmp"]
    assert "emptyDir" in volumes[0]


def test_credentials_come_from_optional_secret(objects: list[dict[str, Any]]) -> None:
    references = {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]
        for variable in container(objects)["env"]
        if "secretKeyRef" in variable.get("valueFrom", {})
    }

    assert set(references) == {"KUBESTASH_API_KEY", "WEBHOOK_TOKEN"}
    for name, reference in references.items():
        assert reference["key"] == name
        assert reference["optional"] is True


def test_settings_come_from_generated_configmap(objects: list[dict[str, Any]]) -> None:
    configmap = find(objects, "ConfigMap")
    sources = container(objects)["envFrom"]

    assert sources == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]


def test_every_setting_is_set_in_the_manifests(objects: list[dict[str, Any]]) -> None:
    secret_variables = {"KUBESTASH_API_KEY", "WEBHOOK_TOKEN"}
    present = set(pod_environment(objects)) | secret_variables
    missing = [option.variable for option in OPTIONS if option.variable not in present]

    assert missing == []


def test_settings_load_from_pod_environment(objects: list[dict[str, Any]]) -> None:
    settings = Settings.load(pod_environment(objects))

    assert settings.dry_run is True
    assert settings.leader_election is True
    assert settings.lease_namespace == "secrets-sync"
    assert settings.port == container(objects)["ports"][0]["containerPort"]


def test_configmap_keeps_program_defaults(objects: list[dict[str, Any]]) -> None:
    data = find(objects, "ConfigMap")["data"]
    # LOG_FORMAT is json in the cluster, for log collectors; settings.env explains why.
    changed = {"LOG_FORMAT"}
    differing = [
        option.variable
        for option in OPTIONS
        if option.variable in data
        and option.variable not in changed
        and data[option.variable] != option.default
    ]

    assert differing == []


def test_service_routes_to_http_port(objects: list[dict[str, Any]]) -> None:
    service = find(objects, "Service")
    pod_labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_service_monitor_scrapes_the_service(objects: list[dict[str, Any]]) -> None:
    monitor = find(objects, "ServiceMonitor")["spec"]
    service = find(objects, "Service")
    service_labels = service["metadata"]["labels"]

    assert monitor["selector"]["matchLabels"].items() <= service_labels.items()
    assert service_labels[monitor["jobLabel"]] == "kubestash"
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert monitor["endpoints"][0]["honorLabels"] is True


def test_disruption_budget_selects_the_pods(objects: list[dict[str, Any]]) -> None:
    budget = find(objects, "PodDisruptionBudget")["spec"]
    pod_labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()


def test_prometheus_rule_copy_is_identical() -> None:
    original = REPO / "dashboards" / "prometheusrule.yaml"
    copy_in_deploy = DEPLOY / "prometheusrule.yaml"

    assert copy_in_deploy.read_bytes() == original.read_bytes()


def test_prometheus_rule_is_in_the_build(objects: list[dict[str, Any]]) -> None:
    original = yaml.safe_load((REPO / "dashboards" / "prometheusrule.yaml").read_text())

    assert find(objects, "PrometheusRule")["spec"] == original["spec"]


def test_iam_policy_grants_only_table_stream_and_key() -> None:
    policy = json.loads((DEPLOY / "iam-policy.json").read_text())
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        for resource in resources:
            granted.setdefault(resource, set()).update(actions)

    assert granted == {
        "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/TABLE_NAME": {
            "dynamodb:DescribeTable",
            "dynamodb:Scan",
            "dynamodb:Query",
        },
        "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/TABLE_NAME/stream/*": {
            "dynamodb:DescribeStream",
            "dynamodb:GetShardIterator",
            "dynamodb:GetRecords",
        },
        "arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID": {"kms:Decrypt"},
    }


def test_iam_document_explains_every_action() -> None:
    policy = json.loads((DEPLOY / "iam-policy.json").read_text())
    document = (DEPLOY / "IAM.md").read_text()
    undocumented = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            if f"`{action}`" not in document:
                undocumented.append(action)

    assert undocumented == []
