"""The conformance kit (secretsync.testing) passes a provider that keeps the contract,
fails one that breaks it, and reports what a provider cannot do as skipped, never passed.

Each case runs the kit, in a pytest of its own, against the in-memory provider of
tests/harness/fakeprovider.py with one defect switched on, and reads pytest's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.fakeprovider import DEFECTS

TESTS = Path(__file__).resolve().parent.parent

KIT_RUN = """
import pytest

from harness.fakeprovider import FakeTarget
from secretsync.testing import ProviderConformance


def against(**target):
    class Suite(ProviderConformance):
        @pytest.fixture
        def secretsync_provider(self):
            return FakeTarget(**target)

    return Suite


TestKeepsTheContract = against()
TestCanDoNothingOptional = against(capable=False)
{defects}
"""

# The kit's cases that compare a value fetched with the value written.
READS_VALUES = {
    "test_plain_value_is_read_as_utf8_text",
    "test_json_value_round_trips_byte_for_byte",
    "test_a_json_property_is_selected_by_the_engine",
    "test_binary_value_is_read_as_bytes",
    "test_a_whole_map_arrives_as_its_json_object",
    "test_a_pinned_version_reads_that_version_or_is_refused",
    "test_not_found_fails_that_ref_only",
    "test_denied_key_is_access_denied",
    "test_a_batch_of_25_keys_comes_back_whole",
    "test_one_client_serves_concurrent_fetches",
    "test_close_releases_what_the_client_opened",
}
CASES = 19  # the kit's cases


def suite(defect: str) -> str:
    return "Test" + "".join(part.capitalize() for part in defect.split("-"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[str, str]]]:
    """{suite: {case: (outcome, message)}} of one pytest run of the kit against the fake,
    once without a defect, once without optional capabilities, once per defect."""
    where = tmp_path_factory.mktemp("kit-run")
    lines = [f"{suite(d)} = against(defects=frozenset({{{d!r}}}))" for d in sorted(DEFECTS)]
    (where / "test_kit.py").write_text(KIT_RUN.format(defects="\n".join(lines)))
    junit = where / "report.xml"
    paths = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "--rootdir",
            str(where),
            str(where / "test_kit.py"),
        ],
        cwd=where,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert junit.exists(), proc.stdout + proc.stderr
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own pytest wrote it
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, found.get("message", "") + (found.text or "")
        out.setdefault(case.get("classname", "").rsplit(".", 1)[-1], {})[case.get("name", "")] = (
            outcome,
            message,
        )
    return out


def outcomes(report: dict[str, dict[str, tuple[str, str]]], name: str) -> dict[str, str]:
    assert len(report[name]) == CASES, sorted(report[name])
    return {case: outcome for case, (outcome, _) in report[name].items()}


def test_a_provider_that_keeps_the_contract_passes_every_case(
    report: dict[str, dict[str, tuple[str, str]]],
) -> None:
    assert set(outcomes(report, "TestKeepsTheContract").values()) == {"passed"}


def test_a_missing_capability_is_a_skip_with_its_reason_never_a_pass(
    report: dict[str, dict[str, tuple[str, str]]],
) -> None:
    got = report["TestCanDoNothingOptional"]

    skipped = {case: message for case, (outcome, message) in got.items() if outcome == "skipped"}

    assert set(skipped) == {
        "test_binary_value_is_read_as_bytes",
        "test_a_new_value_moves_its_version_and_no_other",
        "test_find_by_path_prefix_returns_every_key_under_it",
        "test_find_by_path_and_name_regexp_keeps_only_matching_names",
        "test_find_by_tags_keeps_only_keys_with_every_tag_or_is_refused",
        "test_denied_key_is_access_denied",
    }
    assert all("capabilities." in m or "denied_key() is None" in m for m in skipped.values())
    # A pinned version on a store without versions is still checked: it must be refused.
    assert got["test_a_pinned_version_reads_that_version_or_is_refused"][0] == "passed"
    assert {o for c, (o, _) in got.items() if c not in skipped} == {"passed"}


def test_one_wrong_value_fails_every_case_that_reads_a_value(
    report: dict[str, dict[str, tuple[str, str]]],
) -> None:
    got = outcomes(report, suite("wrong-value-once"))

    assert {case for case, outcome in got.items() if outcome == "failure"} == READS_VALUES


def test_a_value_in_a_log_record_fails_the_case_that_logged_it(
    report: dict[str, dict[str, tuple[str, str]]],
) -> None:
    got = report[suite("log-value")]

    failed = {case: message for case, (outcome, message) in got.items() if outcome == "failure"}

    assert set(failed) >= READS_VALUES
    assert all("secret values leaked" in m and "log record" in m for m in failed.values())


def test_a_value_in_an_errors_text_fails_the_case(
    report: dict[str, dict[str, tuple[str, str]]],
) -> None:
    outcome, message = report[suite("value-in-error")]["test_not_found_fails_that_ref_only"]

    assert outcome == "failure"
    assert "error 1 (SecretNotFoundError) holds a secret value" in message


@pytest.mark.parametrize(
    ("defect", "case"),
    [
        ("ignore-tags", "test_find_by_tags_keeps_only_keys_with_every_tag_or_is_refused"),
        ("ignore-pins", "test_a_pinned_version_reads_that_version_or_is_refused"),
        ("unbatched", "test_a_batch_of_25_keys_comes_back_whole"),
        ("unbatched", "test_versions_of_a_batch_of_25_keys_match_fetch_in_few_calls"),
    ],
)
def test_a_broken_promise_fails_its_case(
    report: dict[str, dict[str, tuple[str, str]]], defect: str, case: str
) -> None:
    assert report[suite(defect)][case][0] == "failure"
