"""Case files: every mistake is refused with the table and key named."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.fem

pytest.importorskip("snmech.fem")

from snmech.fem.case import CaseError, build_solver, load_case  # noqa: E402

GOOD = """
[mesh]
generator = "beam"
n = [4, 1, 1]
[material]
reference = "linear"
density = 7850.0
[time]
end = 1e-4
[[bc]]
type = "clamp"
where = "clamped"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.toml"
    path.write_text(text)
    return path


def test_a_good_case_builds(tmp_path):
    solver = build_solver(load_case(write(tmp_path, GOOD)))
    assert solver.time_step.certified and len(solver.bc_dofs) > 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("[time]\nend = 1e-4\n", ""), r"missing the \[time\] table"),
        (lambda s: s.replace("density = 7850.0", "density = -1.0"), r"\[material\] density"),
        (lambda s: s + "[bogus]\nx = 1\n", r"unknown table"),
        (lambda s: s.replace('type = "clamp"', 'type = "glue"'), r"\[bc 1\] type"),
        (lambda s: s.replace('where = "clamped"', "where = 3"), r"\[bc 1\] needs where"),
        (lambda s: s.replace('reference = "linear"', 'law = "nope.safetensors"'), "nope"),
        (lambda s: s.replace('generator = "beam"', 'generator = "tower"'), r"\[mesh\]"),
        (lambda s: s + '[[load]]\ntype = "gravity"\nacceleration = [0, 0]\n', r"3 numbers"),
        (lambda s: s.replace("[mesh]", "[mesh"), "not valid TOML"),
    ],
)
def test_bad_cases_name_the_problem(tmp_path, edit, message):
    with pytest.raises((CaseError, FileNotFoundError, KeyError, ValueError), match=message):
        build_solver(load_case(write(tmp_path, edit(GOOD))))


def test_an_unknown_tag_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="clamped"):
        build_solver(load_case(write(tmp_path, GOOD.replace('"clamped"', '"left"'))))
