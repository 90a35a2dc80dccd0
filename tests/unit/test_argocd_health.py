"""The Argo CD health script (docs/install/argocd/health.lua) in a real Lua 5.1 runtime
(Argo CD's gopher-lua speaks 5.1), on statuses the operator really wrote (captured from
the integration tests, see fixtures/argocd/README.md), and as shipped in the argocd-cm
patch for all three kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa.lua51 import LuaRuntime

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "install" / "argocd" / "health.lua"
PATCH = REPO / "docs" / "install" / "argocd" / "argocd-cm-patch.yaml"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "argocd").glob("*.json"))
KINDS = ("SecretSync", "SecretStore", "ClusterSecretStore")


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(script)
    return str(hs["status"]), str(hs["message"])


def test_fixtures_cover_every_kind_and_every_health() -> None:
    seen = {
        (json.loads(p.read_text())["object"]["kind"], json.loads(p.read_text())["expected"])
        for p in FIXTURES
    }
    assert {kind for kind, _ in seen} == set(KINDS)
    assert {h for _, h in seen} == {"Healthy", "Progressing", "Degraded"}


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_live_statuses_map_to_the_expected_health(fixture: Path) -> None:
    case = json.loads(fixture.read_text())
    status, message = health(SCRIPT.read_text(), case["object"])
    assert status == case["expected"]
    assert message


def test_degraded_says_the_reason_and_the_operators_message() -> None:
    case = json.loads((FIXTURES[0].parent / "secretsync-access-denied.json").read_text())
    ready = case["object"]["status"]["conditions"][0]
    _, message = health(SCRIPT.read_text(), case["object"])
    assert message == f"AccessDenied: {ready['message']}"


def test_a_ready_condition_of_an_older_generation_is_progressing_not_healthy() -> None:
    case = json.loads((FIXTURES[0].parent / "secretsync-synced.json").read_text())
    obj = case["object"]
    obj["metadata"]["generation"] += 1
    obj["status"]["observedGeneration"] += 1  # top level caught up, the condition not
    assert health(SCRIPT.read_text(), obj)[0] == "Progressing"


def test_unknown_ready_is_progressing() -> None:
    obj = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "Unknown", "reason": "Checking"}],
        },
    }
    assert health(SCRIPT.read_text(), obj)[0] == "Progressing"


def test_the_argocd_cm_patch_ships_the_script_for_all_three_kinds() -> None:
    patch = yaml.safe_load(PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    keys = {f"resource.customizations.health.secretsync.io_{kind}" for kind in KINDS}
    assert set(patch["data"]) == keys
    for key in keys:
        assert patch["data"][key] == SCRIPT.read_text()
