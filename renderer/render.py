"""`kubestash render`: the table's Secrets as a YAML stream, from the Jinja2 templates.

Formats:
- `secret`: Secrets with data, for GitOps tools that apply manifests;
- `shell`: the same Secrets without data, for Argo CD to track while kubestash writes the
  keys (it needs no KMS call);
- `externalsecret`: an External Secrets Operator ClusterSecretStore on kubestash's webhook
  endpoint, and one ExternalSecret per Secret.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import jinja2

from renderer import templates_dir
from renderer.compare import ANNOTATION_CHECKSUM, ANNOTATION_MESSAGE, ANNOTATION_STATUS
from renderer.decrypt import Decryptor
from renderer.desired import DesiredSecret, desired_secrets
from renderer.index import Entry
from renderer.kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from renderer.names import Outcome, parse_name
from renderer.settings import Settings
from renderer.source import CredstashTable

logger = logging.getLogger(__name__)

FORMATS = ("secret", "shell", "externalsecret")
DEFAULT_WEBHOOK_URL = "http://kubestash.kubestash.svc:8080"
# Go templates that External Secrets Operator fills in; kept out of the Jinja2 file so
# that the two template languages never meet in one string.
WEBHOOK_PATH_TEMPLATE = '/v1/secrets/{{ .remoteRef.key | replace "%2F" "/" }}'
AUTHORIZATION_TEMPLATE = "Bearer {{ .auth.token }}"


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def read_table(
    settings: Settings, *, decrypt: bool, session: boto3.Session | None = None
) -> dict[Any, DesiredSecret]:
    """Scan the table and group its OK names into Secrets; decrypt only when asked."""
    session = session or boto3.Session()
    scan = CredstashTable(settings, session).scan()
    parsed = [parse_name(name, settings.namespace_exclude) for name in sorted(scan.items)]
    ok = [name for name in parsed if name.outcome is Outcome.OK]
    for name in parsed:
        if name.outcome is Outcome.INVALID:
            logger.warning("credstash name %r skipped: %s", name.name, name.reason)

    if not decrypt:
        entries = [Entry(name, scan.items[name.name], plaintext="") for name in ok]
        return desired_secrets(entries)

    decrypted, _stats = Decryptor(settings, session).decrypt_many(
        scan.items[name.name] for name in ok
    )
    entries = []
    for name in ok:
        outcome = decrypted[name.name]
        if not outcome.ok:
            logger.warning(
                "Key %s of Secret %s (credstash name %r) left out: %s",
                name.key,
                name.ref,
                name.name,
                outcome.error,
            )
        entries.append(Entry(name, outcome.item, outcome.plaintext, outcome.error))
    return desired_secrets(entries)


def secret_context(secret: DesiredSecret, *, include_data: bool) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if include_data:
        annotations = {
            ANNOTATION_CHECKSUM: secret.checksum,
            ANNOTATION_STATUS: "Failed" if secret.failed else "Synced",
            ANNOTATION_MESSAGE: (
                f"{len(secret.failed)} keys failed: {', '.join(sorted(secret.failed))}"
                if secret.failed
                else f"{len(secret.data)} keys rendered"
            ),
        }
    return {
        "namespace": secret.ref.namespace,
        "name": secret.ref.name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        "annotations": annotations,
        "data": dict(sorted(secret.data.items())) if include_data else {},
    }


def render_secrets(
    secrets: dict[Any, DesiredSecret],
    output_format: str,
    *,
    webhook_url: str = DEFAULT_WEBHOOK_URL,
    store_name: str = "kubestash",
    token_secret: str = "kubestash-webhook",
    token_namespace: str = "kubestash",
    refresh_interval: str = "1h",
) -> str:
    """Render already grouped Secrets in one of FORMATS as a YAML stream."""
    if output_format not in FORMATS:
        raise ValueError(f"format {output_format!r} is not one of {', '.join(FORMATS)}")
    include_data = output_format == "secret"
    contexts = [secret_context(secrets[ref], include_data=include_data) for ref in sorted(secrets)]
    env = environment()
    if output_format == "externalsecret":
        text = env.get_template("externalsecret.yaml.j2").render(
            secrets=contexts,
            store_name=store_name,
            webhook_url_template=webhook_url.rstrip("/") + WEBHOOK_PATH_TEMPLATE,
            authorization_template=AUTHORIZATION_TEMPLATE,
            token_secret=token_secret,
            token_namespace=token_namespace,
            refresh_interval=refresh_interval,
        )
    else:
        template = env.get_template("secret.yaml.j2")
        text = template.render(secrets=contexts, include_data=include_data)
    return text.strip() + "\n" if text.strip() else ""


def render(
    settings: Settings,
    output_format: str,
    *,
    session: boto3.Session | None = None,
    **options: Any,
) -> str:
    """Read the table and render it; only the `secret` format decrypts."""
    if output_format not in FORMATS:
        raise ValueError(f"format {output_format!r} is not one of {', '.join(FORMATS)}")
    secrets = read_table(settings, decrypt=output_format == "secret", session=session)
    return render_secrets(secrets, output_format, **options)
