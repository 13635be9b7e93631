"""Material laws: conventions, reference laws, data, neural laws, training, model files.

Imports torch and numpy only (never dolfinx).
"""

from snmech.material.catalog import reference_law
from snmech.material.data import DataError, StressStrainData, load_data, save_data
from snmech.material.kinematics import Kinematics, mandel_to_tensor, tensor_to_mandel
from snmech.material.model_file import (
    CertificateMismatchError,
    ModelFileError,
    load_law,
    read_metadata,
    save_law,
)
from snmech.material.neural import DirectLaw, NeuralLaw, PotentialLaw, tangent_asymmetry
from snmech.material.paths import (
    cyclic_data,
    cyclic_paths,
    paths_from_data,
    paths_to_data,
    run_paths,
)
from snmech.material.plasticity import J2Plasticity
from snmech.material.reference import LinearElastic, SaturatingElastic
from snmech.material.synthesis import generate_data
from snmech.material.training import TrainingConfig, TrainingResult, train_law

__all__ = [
    "CertificateMismatchError",
    "DataError",
    "DirectLaw",
    "J2Plasticity",
    "Kinematics",
    "LinearElastic",
    "ModelFileError",
    "NeuralLaw",
    "PotentialLaw",
    "SaturatingElastic",
    "StressStrainData",
    "TrainingConfig",
    "TrainingResult",
    "cyclic_data",
    "cyclic_paths",
    "generate_data",
    "load_data",
    "load_law",
    "mandel_to_tensor",
    "paths_from_data",
    "paths_to_data",
    "read_metadata",
    "reference_law",
    "run_paths",
    "save_data",
    "save_law",
    "tangent_asymmetry",
    "tensor_to_mandel",
    "train_law",
]
