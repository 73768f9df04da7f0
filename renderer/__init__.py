"""kubestash: keep Kubernetes Secrets in step with a credstash table."""

from pathlib import Path


def templates_dir() -> Path:
    """Return the Jinja2 templates folder of an installed wheel or of a source checkout."""
    package = Path(__file__).parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no templates folder in {package} or {package.parent}; reinstall kubestash"
    )
