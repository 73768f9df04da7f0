"""Check the Argo CD Application, the argocd-cm snippets and the config management plugin."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
CMP = ARGOCD / "cmp"
KUBERNETES_VERSION = "1.31.0"

# The parts of Argo CD's own argocd-repo-server Deployment that the plugin patch relies on:
# the var-files volume (argocd-cmp-server is copied there) and the plugins volume (sockets).
REPO_SERVER = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "argocd-repo-server"},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "argocd-repo-server"}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "argocd-repo-server"}},
            "spec": {
                "containers": [
                    {"name": "argocd-repo-server", "image": "quay.io/argoproj/argocd:v2.13.0"}
                ],
                "volumes": [
                    {"name": "var-files", "emptyDir": {}},
                    {"name": "plugins", "emptyDir": {}},
                ],
            },
        },
    },
}


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed"
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    return read_yaml(ARGOCD / "application.yaml")


@pytest.fixture(scope="module")
def application_build(
    application: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Build argocd/deploy with the kustomize options that the Application passes to Argo CD."""
    options = application["spec"]["source"]["kustomize"]
    overlay = tmp_path_factory.mktemp("application")
    images = []
    for image in options["images"]:
        name, _, reference = image.partition("=")
        new_name, _, tag = reference.rpartition(":")
        images.append({"name": name, "newName": new_name, "newTag": tag})
    kustomization = {
        "namespace": options["namespace"],
        "resources": [os.path.relpath(REPO / application["spec"]["source"]["path"], overlay)],
        "images": images,
        "patches": options["patches"],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(overlay)


@pytest.fixture(scope="module")
def plugin_build(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Build a stand-in Argo CD installation with the plugin Component."""
    install = tmp_path_factory.mktemp("argocd-install")
    (install / "repo-server.yaml").write_text(yaml.safe_dump(REPO_SERVER))
    kustomization = {
        "namespace": "argocd",
        "resources": ["repo-server.yaml"],
        "components": [os.path.relpath(CMP, install)],
    }
    (install / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(install)


def test_application_deploys_the_kustomization(application: dict[str, Any]) -> None:
    source = application["spec"]["source"]

    assert application["kind"] == "Application"
    assert (REPO / source["path"] / "kustomization.yaml").is_file()
    assert source["kustomize"]["namespace"] == application["spec"]["destination"]["namespace"]


def test_application_ignores_kubestash_fields(application: dict[str, Any]) -> None:
    snippet = read_yaml(ARGOCD / "health" / "ignore-differences.yaml")

    assert application["spec"]["ignoreDifferences"] == snippet["ignoreDifferences"]
    assert snippet["ignoreDifferences"] == [
        {"group": "", "kind": "Secret", "managedFieldsManagers": ["kubestash"]}
    ]


def test_application_options_set_namespace(application_build: list[dict[str, Any]]) -> None:
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        subjects = by_kind(application_build, kind)["subjects"]
        assert [subject["namespace"] for subject in subjects] == ["kubestash"]


def test_application_options_set_role_arn(
    application: dict[str, Any], application_build: list[dict[str, Any]]
) -> None:
    annotations = by_kind(application_build, "ServiceAccount")["metadata"]["annotations"]
    patch = yaml.safe_load(application["spec"]["source"]["kustomize"]["patches"][0]["patch"])

    assert annotations["eks.amazonaws.com/role-arn"] == patch[0]["value"]


def test_application_options_set_image(
    application: dict[str, Any], application_build: list[dict[str, Any]]
) -> None:
    deployment = by_kind(application_build, "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    expected = application["spec"]["source"]["kustomize"]["images"][0].partition("=")[2]

    assert image == expected


def test_argocd_cm_ignores_kubestash_fields() -> None:
    configmap = read_yaml(ARGOCD / "health" / "argocd-cm.yaml")
    rule = yaml.safe_load(configmap["data"]["resource.customizations.ignoreDifferences.Secret"])

    assert rule == {"managedFieldsManagers": ["kubestash"]}


def test_argocd_cm_snippet_validates() -> None:
    configmap = read_yaml(ARGOCD / "health" / "argocd-cm.yaml")

    assert configmap["metadata"]["name"] == "argocd-cm"
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)


def test_plugin_generates_shell_manifests() -> None:
    plugin = read_yaml(CMP / "plugin.yaml")

    assert plugin["apiVersion"] == "argoproj.io/v1alpha1"
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["spec"]["generate"]["command"] == ["kubestash", "render", "--format", "shell"]


def test_plugin_application_names_the_plugin() -> None:
    plugin = read_yaml(CMP / "plugin.yaml")
    application = read_yaml(CMP / "application.yaml")
    expected = f"{plugin['metadata']['name']}-{plugin['spec']['version']}"

    assert application["spec"]["source"]["plugin"]["name"] == expected
    assert "ServerSideApply=true" in application["spec"]["syncPolicy"]["syncOptions"]
    assert application["spec"]["ignoreDifferences"] == [
        {"group": "", "kind": "Secret", "managedFieldsManagers": ["kubestash"]}
    ]


def test_sidecar_mounts_plugin_config(plugin_build: list[dict[str, Any]]) -> None:
    configmap = by_kind(plugin_build, "ConfigMap")
    pod = by_kind(plugin_build, "Deployment")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "kubestash-cmp")
    mounts = {mount["mountPath"]: mount for mount in sidecar["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    config_mount = mounts["/home/argocd/cmp-server/config/plugin.yaml"]

    assert configmap["data"]["plugin.yaml"] == (CMP / "plugin.yaml").read_text()
    assert config_mount["subPath"] == "plugin.yaml"
    assert volumes[config_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert mounts["/var/run/argocd"]["name"] == "var-files"
    assert mounts["/home/argocd/cmp-server/plugins"]["name"] == "plugins"


def test_sidecar_runs_cmp_server_as_999(plugin_build: list[dict[str, Any]]) -> None:
    pod = by_kind(plugin_build, "Deployment")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "kubestash-cmp")

    assert sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert sidecar["securityContext"]["runAsUser"] == 999
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True


def test_patched_repo_server_validates(
    plugin_build: list[dict[str, Any]],
) -> None:
    for obj in plugin_build:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_plugin_readme_warns_about_redis() -> None:
    readme = (CMP / "README.md").read_text()

    assert "--format secret" in readme
    assert "Redis" in readme
