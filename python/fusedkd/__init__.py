"""fusedkd: fused knowledge-distillation losses (loss and gradient in one pass).

    import fusedkd
    loss = fusedkd.dkd_loss(student_logits, teacher_logits, target)

``fusedkd.reference`` holds pure-PyTorch implementations that follow the authors' code.
"""

from . import reference
from ._ops import HAS_CUDA_KERNELS, ops
from .functional import dkd_loss, kd_loss
from .modules import DKDLoss, KDLoss

__version__ = "0.1.0"

__all__ = ["kd_loss", "dkd_loss", "KDLoss", "DKDLoss", "reference", "ops", "HAS_CUDA_KERNELS", "__version__"]
