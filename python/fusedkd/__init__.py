"""fusedkd: fused knowledge-distillation losses (loss and gradient in one pass).

    import fusedkd
    loss = fusedkd.dkd_loss(student_logits, teacher_logits, target)

``fusedkd.reference`` holds pure-PyTorch implementations that follow the authors' code;
``fusedkd.distributed`` the same losses on logits sharded over the vocabulary (tensor parallelism);
``fusedkd.compat`` (imported on demand: ``import fusedkd.compat``) drop-in adapters with the
authors' signatures (cls_KD, mdistiller, RLD). See docs/api.md.
"""

from . import reference
from ._ops import HAS_CUDA_KERNELS, ops
from .functional import (cross_entropy_loss, dkd_loss, forward_kl_loss, jsd_loss, kd_loss, nkd_loss, reverse_kl_loss, rld_loss, tfnkd_loss,
                         topk_kd_loss, tvd_loss, uskd_loss)
from . import distributed, fused_linear
from .fused_linear import fused_linear_distillation_loss
from .modules import (CrossEntropyLoss, DKDLoss, ForwardKLLoss, FusedLinearDistillationLoss, JSDLoss, KDLoss, NKDLoss,
                      ReverseKLLoss, RLDLoss, TfNKDLoss, TopKKDLoss, TVDLoss, USKDLoss)

__version__ = "0.1.0"

__all__ = [
    "kd_loss", "dkd_loss", "nkd_loss", "uskd_loss", "rld_loss",
    "forward_kl_loss", "reverse_kl_loss", "jsd_loss", "tvd_loss", "topk_kd_loss", "cross_entropy_loss",
    "tfnkd_loss", "KDLoss", "DKDLoss", "NKDLoss", "USKDLoss", "RLDLoss", "ForwardKLLoss", "ReverseKLLoss", "JSDLoss", "TVDLoss", "TopKKDLoss",
    "CrossEntropyLoss", "TfNKDLoss", "fused_linear_distillation_loss", "FusedLinearDistillationLoss", "fused_linear",
    "distributed", "reference", "ops", "HAS_CUDA_KERNELS", "__version__"]
