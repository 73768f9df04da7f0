"""A Kubernetes API test server with server-side apply, for tests and the demo.

No kube-apiserver can be installed from the package registries this project uses, so
tests and `kubestash demo` talk to this stand-in. It serves plain HTTP on 127.0.0.1,
keeps state in memory and behaves like kube-apiserver 1.32 for what kubestash and
kubectl use:

- discovery (`/version`, `/api`, `/api/v1`, `/apis`, each group) and the part of
  OpenAPI v3 that kubectl reads to send `fieldValidation`;
- core/v1 Namespaces, Secrets and Events, coordination.k8s.io/v1 Leases and
  events.k8s.io/v1 Events (one storage with core Events, as in kube-apiserver);
- authorization.k8s.io/v1 SelfSubjectAccessReview (for `kubectl auth can-i`), which
  allows everything because the server has no authentication or RBAC;
- get, list (label and field selectors, `limit`/`continue`) and watch (from a resource
  version, bookmarks, 410 Gone past the kept history);
- create, update, delete (preconditions, finalizers, deletecollection), and JSON,
  merge, strategic merge and apply patches, with `dryRun=All` and `fieldValidation`;
- managedFields, validation errors as `Status` objects, and `Table` output for
  `kubectl get`.

Start it in-process:

    with KubeAPIServer(port=0) as server:
        server.write_kubeconfig(path)
        ...  # server.url, server.requests, server.faults, server.reset()

or as a process: `python -m renderer.testing.kubeapi --port 0 --kubeconfig PATH`, which
prints the URL once it listens and stops on SIGTERM. The pytest fixtures are in
`renderer.testing.kubeapi.fixture`.

Request log: `server.requests` lists every resource request as a `RequestRecord`
(a named tuple `(verb, api_group, resource, subresource, namespace, name, code)`), with
the RBAC verb (get, list, watch, create, update, patch, delete, deletecollection) and
the HTTP status of the response (0 for a dropped connection). `GET /_requests` returns the
same as JSON; `DELETE /_requests` empties it. Discovery requests are not logged.

Fault switch: `server.faults` in-process, or `POST /_faults` with a JSON rule (or a
list of rules). `GET /_faults` lists the rules with their hits. `DELETE /_faults`
removes them all, and `DELETE /_faults/{id}` removes one of them. A rule:

    {
      "verb": "patch",              # RBAC verb, or "*" (default) for every request
      "method": "PATCH",            # optional HTTP method
      "path": "/secrets/",          # optional regex searched in the request path
      "action": "status",           # delay | status | drop | hang
      "status": 429,                # for "status": the HTTP code (default 500)
      "retry_after_seconds": 2,     # for "status": Retry-After (429 defaults to 1)
      "delay_seconds": 0.5,         # for "delay" (required) and "hang" (default: until
                                    # the rules are cleared or the server stops)
      "count": 3,                   # optional: fire this many times
      "window_seconds": 10,         # optional: fire only this long after being added
      "message": "etcd is down"     # optional: the Status message
    }

"delay" waits and then serves the request normally; "status" answers with a Status
object (429 TooManyRequests with `Retry-After`, 500 InternalError, 503, 504, ...);
"drop" closes the connection without an answer; "hang" holds the connection without
an answer and then closes it. The first active matching rule, in the order added,
decides. `server.reset()` (or `POST /_reset`) drops all objects, rules and logged
requests and recreates the namespaces `default`, `kube-system` and `kube-public`.
"""

from .faults import FaultRule, Faults
from .server import KubeAPIServer, RequestRecord

__all__ = ["FaultRule", "Faults", "KubeAPIServer", "RequestRecord"]
