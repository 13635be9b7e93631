"""Strain/stress conventions: Mandel vectors for 3D and plane strain.

Mandel notation keeps Euclidean norms equal to Frobenius norms of tensors, so
operator norms of tangents in Pa mean what they say:

* 3D: ``[e11, e22, e33, sqrt2 e23, sqrt2 e13, sqrt2 e12]``
* plane strain: ``[e11, e22, sqrt2 e12]``

Data files hold plain tensor components (``eps_12`` is the tensor component,
not the engineering shear ``gamma_12 = 2 eps_12``).
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
import numpy.typing as npt

SQRT2 = math.sqrt(2.0)


class Kinematics(Enum):
    """The kinematic constraint of a law: sets vector size and component names."""

    THREE_D = "3d"
    PLANE_STRAIN = "plane_strain"

    @property
    def size(self) -> int:
        """Length of a Mandel strain/stress vector (6 or 3)."""
        return 6 if self is Kinematics.THREE_D else 3

    @property
    def dim(self) -> int:
        """Spatial dimension of the mesh this law lives on (3 or 2)."""
        return 3 if self is Kinematics.THREE_D else 2

    @property
    def components(self) -> tuple[str, ...]:
        """Tensor component suffixes in Mandel order, e.g. ``("11", "22", "12")``."""
        if self is Kinematics.THREE_D:
            return ("11", "22", "33", "23", "13", "12")
        return ("11", "22", "12")

    @property
    def shear_mask(self) -> npt.NDArray[np.bool_]:
        """True at the off-diagonal (shear) entries."""
        return np.array([c[0] != c[1] for c in self.components])

    @property
    def embedding(self) -> npt.NDArray[np.intp]:
        """Indices of this vector's entries inside the 3D Mandel vector."""
        return np.array([0, 1, 2, 3, 4, 5] if self is Kinematics.THREE_D else [0, 1, 5])

    @classmethod
    def parse(cls, value: str | Kinematics) -> Kinematics:
        """Accept ``"3d"``, ``"plane_strain"`` (or the enum itself)."""
        if isinstance(value, Kinematics):
            return value
        try:
            return cls(str(value).lower().replace("-", "_"))
        except ValueError:
            names = ", ".join(repr(k.value) for k in cls)
            raise ValueError(f"unknown kinematics {value!r}; expected one of {names}") from None


def tensor_to_mandel(components: npt.ArrayLike, kinematics: Kinematics) -> npt.NDArray[np.float64]:
    """Tensor components ``(n, size)`` in :attr:`Kinematics.components` order -> Mandel."""
    x = np.array(components, dtype=np.float64)
    x[:, kinematics.shear_mask] *= SQRT2
    return x


def mandel_to_tensor(vectors: npt.ArrayLike, kinematics: Kinematics) -> npt.NDArray[np.float64]:
    """Mandel vectors ``(n, size)`` -> tensor components in the same order."""
    x = np.array(vectors, dtype=np.float64)
    x[:, kinematics.shear_mask] /= SQRT2
    return x


def volumetric_vector(kinematics: Kinematics) -> npt.NDArray[np.float64]:
    """The Mandel vector of the identity tensor (restricted to the kinematics)."""
    return np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])[kinematics.embedding]
