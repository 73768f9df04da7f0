"""Run kubestash 2.0.2's `pushall` as one measured phase (executed by the v1 venv's python).

kubestash 2.0.2 is imported from its own venv, so this file uses only the standard
library and bench/protocol.py. Timing starts after the imports, as it does for kubestash
and the floor, and covers everything `kubestash pushall TABLE` does.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
import kubestash  # noqa: E402

from bench import protocol  # noqa: E402


def main() -> None:
    phase_name, table = sys.argv[1], sys.argv[2]
    protocol.take_stdout()

    # Older boto3 releases ignore AWS_ENDPOINT_URL and would send the requests to AWS.
    endpoint = boto3.client("kms").meta.endpoint_url
    if endpoint != os.environ["AWS_ENDPOINT_URL"]:
        raise SystemExit(f"boto3 {boto3.__version__} ignores AWS_ENDPOINT_URL ({endpoint})")

    sys.argv = ["kubestash", "pushall", table]
    with protocol.phase(phase_name) as details:
        try:
            kubestash.main()
            details["exit_code"] = 0
        except SystemExit as exc:
            details["exit_code"] = exc.code
        except Exception as exc:  # noqa: BLE001 - the benchmark reports how v1 fails
            details["exit_code"] = 1
            details["error"] = f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    main()
