"""Freezing part of a network: its weights stop training, its batch-norm statistics too.

``--freeze features`` trains the head alone on the features of a network, the course's
"features + small classifier" approach. The training loop needs only :func:`frozen_norms`,
which finds the batch-norm layers that :func:`freeze` left without trainable parameters.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.options import FREEZE


def freeze(model: nn.Module, what: str) -> int:
    """Freezes ``what`` of ``model`` (``features`` or ``none``); returns the frozen count.

    The parameters of ``model.features`` stop requiring gradients, so the optimizer, which
    takes only trainable parameters, never sees them. Their batch-norm layers also stay in eval
    mode during training (see :func:`frozen_norms`): in training mode a batch-norm layer
    normalizes with each batch's statistics and updates its running ones, so the "frozen"
    features would still change, the head would learn on batch-normalized features while it is
    evaluated on running-statistics ones, and a small fine-tuning set's noisy batch statistics
    would overwrite those learned on the large source set.
    """
    if what not in FREEZE:
        raise CnnlabError(f"--freeze {what!r}: choose one of {', '.join(FREEZE)}")
    if what == "none":
        return 0
    features = getattr(model, "features", None)
    parameters = list(features.parameters()) if isinstance(features, nn.Module) else []
    if not parameters:
        name = getattr(model, "cnnlab_config", {}).get("name", type(model).__name__)
        raise CnnlabError(
            f"--freeze features: the network {name} has no feature layers with weights to "
            "freeze; leave --freeze out"
        )
    for parameter in parameters:
        parameter.requires_grad_(False)
    return sum(p.numel() for p in parameters)


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers whose parameters are all frozen: they train in eval mode."""
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and any(True for _ in module.parameters())
        and not any(p.requires_grad for p in module.parameters())
    ]


def freeze_record(model: nn.Module, what: str) -> dict:
    """What was frozen, for the run's records: the part and its share of the parameters."""
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"frozen": what, "frozen_parameters": frozen, "parameters": total}
