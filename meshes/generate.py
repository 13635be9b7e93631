"""Regenerate the small committed meshes of this folder.

    .venv/bin/python meshes/generate.py            # all three, into meshes/
    .venv/bin/python meshes/generate.py --only bridge_coarse --out /tmp/meshes

Each mesh is written by ``snmech.fem.mesh_io.write_mesh`` as ``<name>.xdmf`` +
``<name>.h5`` + ``<name>.tags.json``. Medium and fine bridges are not committed:
build them with ``bridge_mesh(size="medium")`` (or ``"fine"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import snmech.fem  # noqa: F401  (imports dolfinx_solver before dolfinx/mpi4py)
from snmech.fem.mesh_io import write_mesh
from snmech.fem.meshes import beam_mesh, bridge_mesh

BUILDERS = {
    "beam_coarse": lambda: beam_mesh(),  # 1 m x 0.1 m x 0.1 m cantilever, 20 x 2 x 2 boxes
    "bridge_coarse": lambda: bridge_mesh(),  # 20 m span girder bridge, 3D tetrahedra
    "bridge2d_coarse": lambda: bridge_mesh(dim=2),  # its plane-strain side elevation
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or BUILDERS:
        tagged = BUILDERS[name]()
        path = write_mesh(args.out / name, tagged)
        print(f"{path}\n{tagged.describe()}")


if __name__ == "__main__":
    main()
