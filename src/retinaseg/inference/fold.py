"""Fold batch normalisation into the convolution before it, for inference.

In evaluation mode a batch norm is a fixed per-channel affine map, so
``bn(conv(x))`` equals one convolution with rescaled weights and a shifted
bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the
activations less, and in reduced precision one rounding less.

Which batch norm follows which convolution is read from the module tree, not
from a trace: ``torch.fx.experimental.optimization.fuse`` traces the network
symbolically, and on MONAI's ``UpCat`` (the registry's U-Net) the trace takes
the branch without the skip connection, silently giving another network. A
pair is folded only where a plain :class:`torch.nn.Sequential` (one whose
``forward`` is not overridden) hands a :class:`~torch.nn.Conv2d`'s output
straight on to a :class:`~torch.nn.BatchNorm2d`, possibly the first module
of nested plain sequentials (MONAI's ``Convolution`` holds ``conv`` and then
``adn``, whose first module ``N`` is the norm): there the convolution's
output has no other user. Every other batch norm is left as it is.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TypeGuard

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norm(network: nn.Module) -> int:
    """Fold, in place, every batch norm that directly follows a convolution (see the module docstring).

    Only batch norms in evaluation mode with running statistics are folded;
    a folded one is replaced by :class:`~torch.nn.Identity`. Outputs agree
    with the unfolded network up to floating-point rounding (about 1e-6
    relative in float32).

    Parameters
    ----------
    network
        Any network; modified in place (fold a copy to keep the original).

    Returns
    -------
    int
        Number of batch norms folded; 0 for networks without such pairs.
    """
    folded = 0
    for container in list(network.modules()):
        if not _is_plain_sequential(container):
            continue
        children = list(container.named_children())
        for (name, conv), (next_name, following) in pairwise(children):
            parent, key, norm = _first_module(container, next_name, following)
            if isinstance(conv, nn.Conv2d) and not conv.training and _foldable(norm):
                setattr(container, name, fuse_conv_bn_eval(conv, norm))
                setattr(parent, key, nn.Identity())
                folded += 1
    return folded


def _is_plain_sequential(module: nn.Module) -> TypeGuard[nn.Sequential]:
    """Whether ``module`` runs its children one after the other, each on the previous one's output only."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _first_module(parent: nn.Module, key: str, module: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """The first module to see ``module``'s input, descending through plain sequentials, with its parent and key."""
    while _is_plain_sequential(module) and len(module) > 0:
        parent, (key, module) = module, next(iter(module.named_children()))
    return parent, key, module


def _foldable(module: nn.Module) -> TypeGuard[nn.BatchNorm2d]:
    """A 2-D batch norm that normalises with fixed running statistics (evaluation mode)."""
    return (
        isinstance(module, nn.BatchNorm2d)
        and not module.training
        and module.running_mean is not None
        and module.running_var is not None
    )
