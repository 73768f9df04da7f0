"""Discovery and OpenAPI, as kubectl and the Python DynamicClient read them."""

from __future__ import annotations

from kubernetes import dynamic


def test_version_is_served(cluster):
    body = cluster.http.get("/version").json()

    assert body["major"] == "1"
    assert body["gitVersion"].startswith("v1.")


def test_core_group_lists_resources(cluster):
    body = cluster.http.get("/api/v1").json()
    resources = {entry["name"]: entry for entry in body["resources"]}

    assert body["groupVersion"] == "v1"
    assert resources["secrets"]["kind"] == "Secret"
    assert resources["secrets"]["namespaced"] is True
    assert set(resources["secrets"]["verbs"]) >= {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    assert resources["namespaces"]["namespaced"] is False
    assert "ev" in resources["events"]["shortNames"]


def test_groups_are_listed(cluster):
    body = cluster.http.get("/apis").json()
    groups = {group["name"]: group for group in body["groups"]}

    assert groups["coordination.k8s.io"]["preferredVersion"]["version"] == "v1"
    assert "events.k8s.io" in groups


def test_group_version_lists_leases(cluster):
    body = cluster.http.get("/apis/coordination.k8s.io/v1").json()

    assert [entry["name"] for entry in body["resources"] if "/" not in entry["name"]] == ["leases"]


def test_unknown_path_is_not_found(cluster):
    answer = cluster.http.get("/apis/example.com/v1")

    assert answer.status_code == 404


def test_dynamic_client_finds_kinds(cluster):
    client = dynamic.DynamicClient(cluster.api_client())

    assert client.resources.get(api_version="v1", kind="Secret").name == "secrets"
    assert client.resources.get(api_version="coordination.k8s.io/v1", kind="Lease").namespaced
    assert client.resources.get(api_version="events.k8s.io/v1", kind="Event").name == "events"


def test_dynamic_client_server_side_apply(cluster, namespace):
    client = dynamic.DynamicClient(cluster.api_client())
    secrets = client.resources.get(api_version="v1", kind="Secret")
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dyn", "namespace": namespace},
        "data": {"A": "MQ=="},
    }
    applied = secrets.server_side_apply(
        body=body, namespace=namespace, field_manager="kubestash", force_conflicts=True
    )

    assert applied.data.A == "MQ=="
    assert applied.metadata.managedFields[0].manager == "kubestash"


def test_openapi_patch_operation_declares_field_validation(cluster):
    root = cluster.http.get("/openapi/v3").json()
    document = cluster.http.get(root["paths"]["api/v1"]["serverRelativeURL"]).json()
    path = document["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]
    shared = document.get("components", {}).get("parameters", {})
    parameters = set()
    for parameter in path["patch"]["parameters"]:
        if "$ref" in parameter:
            parameter = shared[parameter["$ref"].rsplit("/", 1)[1]]
        parameters.add(parameter["name"])

    assert "fieldValidation" in parameters
    assert path["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Secret"


def test_access_review_reports_allowed(cluster, namespace):
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"namespace": namespace, "verb": "patch", "resource": "secrets"}
        },
    }
    answer = cluster.http.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review
    )

    assert answer.status_code == 201
    body = answer.json()
    assert body["kind"] == "SelfSubjectAccessReview"
    assert body["spec"]["resourceAttributes"]["resource"] == "secrets"
    assert "allowed" in body["status"]
    if cluster.is_test_server:
        assert body["status"]["allowed"] is True


def test_access_review_needs_attributes(cluster):
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    answer = cluster.http.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review
    )

    assert answer.status_code == 422


def test_kubectl_auth_can_i(cluster, namespace):
    result = cluster.kubectl("-n", namespace, "auth", "can-i", "patch", "secrets", check=False)

    assert result.stdout.strip() in ("yes", "no")
    if cluster.is_test_server:
        assert result.stdout.strip() == "yes"
