"""Run the Secret health check through Lua 5.1, as Argo CD's gopher-lua runs it.

Each case of argocd/health/Secret/health_test.yaml (Argo CD's own test layout) loads its
testdata object, runs health.lua with that object as the global `obj`, and compares the
returned status and message.
"""

from pathlib import Path

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="lupa has no Lua 5.1 runtime")

REPO = Path(__file__).resolve().parents[2]
CHECK_DIR = REPO / "argocd" / "health" / "Secret"
HEALTH_LUA = CHECK_DIR / "health.lua"
HEALTH_TEST = CHECK_DIR / "health_test.yaml"
ARGOCD_CM = REPO / "argocd" / "health" / "argocd-cm.yaml"

# Argo CD runs a health script from argocd-cm without the string, io and math libraries:
# only the base functions, table, and a reduced os. The sandbox below has the same
# globals, so a script that calls string.find passes here only if it passes in Argo CD.
SANDBOX_RUNNER = """
function(source, obj)
  local chunk, err = loadstring(source, "=health.lua")
  if chunk == nil then
    error(err)
  end
  local env = {
    obj = obj,
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, select = select, tonumber = tonumber, tostring = tostring,
    type = type, unpack = unpack,
    table = table,
    os = {time = os.time, date = os.date, clock = os.clock},
  }
  setfenv(chunk, env)
  return chunk()
end
"""


def load_cases() -> list[dict]:
    return yaml.safe_load(HEALTH_TEST.read_text())["tests"]


def run_health_check(obj: dict) -> dict:
    runtime = lua51.LuaRuntime()
    assert runtime.eval("_VERSION") == "Lua 5.1"

    runner = runtime.eval(SANDBOX_RUNNER)
    result = runner(HEALTH_LUA.read_text(), runtime.table_from(obj, recursive=True))
    assert lua51.lua_type(result) == "table", "health.lua must return a table"

    return {"status": result["status"], "message": result["message"] or ""}


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: Path(case["inputPath"]).stem)
def test_health_case(case: dict) -> None:
    obj = yaml.safe_load((CHECK_DIR / case["inputPath"]).read_text())
    expected = case["healthStatus"]

    health = run_health_check(obj)

    assert health["status"] == expected["status"]
    assert health["message"] == expected.get("message", "")


def test_every_testdata_file_has_a_case() -> None:
    used = {Path(case["inputPath"]).name for case in load_cases()}
    present = {path.name for path in (CHECK_DIR / "testdata").glob("*.yaml")}

    assert present == used


def test_cases_cover_every_status() -> None:
    statuses = {case["healthStatus"]["status"] for case in load_cases()}

    assert {"Healthy", "Degraded", "Progressing"} <= statuses


def test_argocd_cm_embeds_health_lua() -> None:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]

    assert data["resource.customizations.health.Secret"] == HEALTH_LUA.read_text()


def test_string_library_is_unavailable_in_sandbox() -> None:
    runtime = lua51.LuaRuntime()
    runner = runtime.eval(SANDBOX_RUNNER)

    with pytest.raises(lua51.LuaError):
        runner('return {status = string.upper("healthy")}', runtime.table_from({}))
