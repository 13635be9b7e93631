"""Reference laws by name (the CLI's ``--law`` and case files' ``reference = ...``)."""

from __future__ import annotations

from snmech.material.kinematics import Kinematics
from snmech.material.plasticity import J2Plasticity
from snmech.material.reference import LinearElastic, SaturatingElastic

REFERENCE_LAWS: dict[str, type[LinearElastic] | type[SaturatingElastic]] = {
    "linear": LinearElastic,
    "saturating": SaturatingElastic,
}
STATEFUL_LAWS = ("j2",)


def reference_law(
    name: str,
    *,
    E: float = 210e9,
    nu: float = 0.3,
    kinematics: Kinematics | str = "3d",
    yield_stress: float = 250e6,
    hardening: float = 2e9,
) -> LinearElastic | SaturatingElastic | J2Plasticity:
    """Build a reference law by name, steel defaults.

    ``"linear"`` and ``"saturating"`` are elastic; ``"j2"`` is the stateful von Mises law
    (:class:`~snmech.material.plasticity.J2Plasticity`), the only one that reads
    ``yield_stress`` and ``hardening`` (Pa).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name == "j2":
        return J2Plasticity(E, nu, yield_stress, hardening, kinematics=kinematics)
    try:
        cls = REFERENCE_LAWS[name]
    except KeyError:
        known = sorted([*REFERENCE_LAWS, *STATEFUL_LAWS])
        raise ValueError(f"unknown reference law {name!r}; choose one of {known}") from None
    law: LinearElastic | SaturatingElastic = cls(E, nu, kinematics=kinematics)
    return law
