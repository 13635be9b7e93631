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
        # wrong types and misspelt keys are named, not passed on or ignored
        (lambda s: s.replace("end = 1e-4", "end = 1e-4\ndampng = 5.0"), r"\[time\] unknown key"),
        (
            lambda s: s + '[[load]]\ntype = "gravity"\nacceleration = [0, 0, -9.8]\nramps = 1\n',
            r"\[load 1\] unknown key\(s\) \['ramps'\]",
        ),
        (
            lambda s: (
                'bc = "clamp"\n' + s.replace('[[bc]]\ntype = "clamp"\nwhere = "clamped"\n', "")
            ),
            r"\[\[bc\]\] must be a list of tables",
        ),
        (
            lambda s: s.replace('reference = "linear"', "law = 3"),
            r"\[material\] law must be a string",
        ),
        (
            lambda s: s.replace('generator = "beam"\nn = [4, 1, 1]', "file = 3"),
            r"\[mesh\] file must be a",
        ),
        (
            lambda s: s.replace('generator = "beam"\nn = [4, 1, 1]', 'file = "m.xdmf"\nsize = 1'),
            r"\[mesh\] unknown key",
        ),
        (
            lambda s: s.replace("n = [4, 1, 1]", "n = [4, 1, 1]\ndegree = 0"),
            r"degree must be 1 or 2",
        ),
        (lambda s: s + '[output]\ncheckpoint_every = "10"\n', r"checkpoint_every must be a whole"),
        (lambda s: s + "[output]\ncheckpoint_every = 2.5\n", r"checkpoint_every must be a whole"),
        (lambda s: s + '[output]\nformat = "vtk"\n', r"\[output\] format must be one of"),
        (
            lambda s: s.replace('where = "clamped"', 'where = "clamped"\ncomponents = [3]'),
            r"\[bc 1\] components must be a list of 0, 1, 2",
        ),
        (
            lambda s: s + "[initial]\nvelocity = [0, 0, 1]\nregion = 2\n",
            r"\[initial\] region must be",
        ),
        (lambda s: "probes = 3\n" + s, r"\[probes\] must be a table"),
        (
            lambda s: s.replace('where = "clamped"', "where = {min = [5, 5, 5], max = [6, 6, 6]}"),
            r"\[bc 1\] where = \{min = \[5.0, 5.0, 5.0\], max = \[6.0, 6.0, 6.0\]\}.*selects no",
        ),
        (lambda s: s.replace("n = [4, 1, 1]", "n = [4, 1, 1]\nheight = nan"), "finite and > 0"),
    ],
)
def test_bad_cases_name_the_problem(tmp_path, edit, message):
    with pytest.raises((CaseError, FileNotFoundError, KeyError, ValueError), match=message):
        build_solver(load_case(write(tmp_path, edit(GOOD))))


def test_an_unknown_tag_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="clamped"):
        build_solver(load_case(write(tmp_path, GOOD.replace('"clamped"', '"left"'))))


def test_checkpoints_need_a_directory_and_whole_steps(tmp_path):
    solver = build_solver(load_case(write(tmp_path, GOOD)))
    with pytest.raises(ValueError, match="checkpoint_every needs an output_dir"):
        solver.run(1e-5, progress=False, checkpoint_every=10)
    with pytest.raises(ValueError, match="whole number of steps >= 1, got 0"):
        solver.run(1e-5, progress=False, output_dir=tmp_path, checkpoint_every=0)


def test_whole_number_floats_and_sections_are_taken_as_meant(tmp_path):
    from snmech.fem.case import run_case

    case = load_case(write(tmp_path, GOOD + "[output]\ncheckpoint_every = 50.0\n"))
    assert case.data["output"]["checkpoint_every"] == 50.0  # a TOML float that is whole
    with pytest.raises(CaseError, match=r"checkpoint_every needs an output directory: .*--out"):
        run_case(case.path, progress=False, plots=False)
    bridge = GOOD.replace('generator = "beam"\nn = [4, 1, 1]', 'generator = "bridge"\ndim = 2')
    bridge = bridge.replace('where = "clamped"', 'where = "support_left"')
    text = bridge.replace("dim = 2", "dim = 2\nsection = {girder_depth = 1.2}")
    deeper = build_solver(load_case(write(tmp_path, text))).mesh.geometry.x[:, 1].max()
    default = build_solver(load_case(write(tmp_path, bridge))).mesh.geometry.x[:, 1].max()
    assert deeper > default + 0.1  # the 0.2 m deeper girder
    with pytest.raises(CaseError, match="bad section for generator 'bridge'"):
        build_solver(
            load_case(write(tmp_path, bridge.replace("dim = 2", "dim = 2\nsection = {depth = 1}")))
        )
