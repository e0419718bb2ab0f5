"""``nn.Module`` wrappers of the functional losses, holding their hyper-parameters."""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F

__all__ = ["KDLoss", "DKDLoss"]


class KDLoss(nn.Module):
    """Hinton KD; ``forward(student_logits, teacher_logits)``."""

    def __init__(self, temperature: float = 4.0, reduction: str = "batchmean"):
        super().__init__()
        self.temperature = temperature
        self.reduction = reduction

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return F.kd_loss(student_logits, teacher_logits, self.temperature, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


class DKDLoss(nn.Module):
    """Decoupled KD; ``forward(student_logits, teacher_logits, target)``."""

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        reduction: str = "batchmean",
        ignore_index: int = -100,
    ):
        super().__init__()
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, student_logits, teacher_logits, target):
        return F.dkd_loss(
            student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature, self.reduction,
            self.ignore_index,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, reduction={self.reduction!r}"
