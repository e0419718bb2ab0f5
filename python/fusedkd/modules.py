"""``nn.Module`` wrappers of the functional losses, holding their hyper-parameters."""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F

__all__ = ["KDLoss", "DKDLoss", "NKDLoss", "USKDLoss", "RLDLoss"]


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


class NKDLoss(nn.Module):
    """Normalized KD; ``forward(student_logits, teacher_logits, target)``."""

    def __init__(self, temperature: float = 1.0, gamma: float = 1.5, reduction: str = "batchmean",
                 ignore_index: int = -100):
        super().__init__()
        self.temperature, self.gamma, self.reduction, self.ignore_index = temperature, gamma, reduction, ignore_index

    def forward(self, student_logits, teacher_logits, target):
        return F.nkd_loss(student_logits, teacher_logits, target, self.temperature, self.gamma, self.reduction,
                          self.ignore_index)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gamma={self.gamma}, reduction={self.reduction!r}"


class RLDLoss(nn.Module):
    """Refined logit distillation; ``forward(student_logits, teacher_logits, target)``."""

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 alpha_temperature: float = 1.0, logit_standardization: bool = False,
                 reduction: str = "batchmean", ignore_index: int = -100):
        super().__init__()
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.alpha_temperature, self.logit_standardization = alpha_temperature, logit_standardization
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, student_logits, teacher_logits, target):
        return F.rld_loss(student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature,
                          self.alpha_temperature, self.logit_standardization, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
                f"alpha_temperature={self.alpha_temperature}, logit_standardization={self.logit_standardization}")


class USKDLoss(nn.Module):
    """Teacher-free USKD. Owns the extra linear layer on an intermediate feature (as the reference
    module does); ``forward(feature, student_logits, target)``."""

    def __init__(self, in_features: int, num_classes: int, alpha: float = 1.0, beta: float = 0.1,
                 mu: float = 0.005, reduction: str = "batchmean", ignore_index: int = -100):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.alpha, self.beta, self.mu = alpha, beta, mu
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, feature: torch.Tensor, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weak = self.fc(feature)
        return F.uskd_loss(student_logits, weak.to(student_logits.dtype), target, self.alpha, self.beta, self.mu,
                           self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, mu={self.mu}"
