"""Material laws: conventions, reference laws, data, neural laws, training, model files.

Imports torch and numpy only (never dolfinx).
"""

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
from snmech.material.reference import LinearElastic, SaturatingElastic, reference_law
from snmech.material.synthesis import generate_data
from snmech.material.training import TrainingConfig, TrainingResult, train_law

__all__ = [
    "CertificateMismatchError",
    "DataError",
    "DirectLaw",
    "Kinematics",
    "LinearElastic",
    "ModelFileError",
    "NeuralLaw",
    "PotentialLaw",
    "SaturatingElastic",
    "StressStrainData",
    "TrainingConfig",
    "TrainingResult",
    "generate_data",
    "load_data",
    "load_law",
    "mandel_to_tensor",
    "read_metadata",
    "reference_law",
    "save_data",
    "save_law",
    "tangent_asymmetry",
    "tensor_to_mandel",
    "train_law",
]
