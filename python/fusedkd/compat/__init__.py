"""Drop-in adapters with the authors' signatures, defaults and return conventions.

* :mod:`fusedkd.compat.cls_kd` — yzd-v/cls_KD (mmpretrain / mmcls 1.x) loss modules ``KDLoss``,
  ``DKDLoss``, ``NKDLoss``, ``USKDLoss`` (``name``, ``use_this``, ... constructor arguments; KD returns
  ``(1 - alpha, loss)``), registered into mmengine's ``MODELS`` registry when mmengine is importable.
* :mod:`fusedkd.compat.mdistiller` — megvii-research/mdistiller ``kd_loss(logits_student,
  logits_teacher, temperature)`` and ``dkd_loss(logits_student, logits_teacher, target, alpha, beta,
  temperature)``.
* :mod:`fusedkd.compat.rld` — zju-SWJ/RLD ``rld_loss``, ``kd_loss`` and ``dkd_loss`` with ``logit_stand``.

Each adapter is a thin call of the fused loss (``reduction="batchmean"``, the reference's mean over
the batch); the numbers are the authors' up to the deviations listed in ``docs/math.md``.
"""

from . import cls_kd, mdistiller, rld

__all__ = ["cls_kd", "mdistiller", "rld"]
