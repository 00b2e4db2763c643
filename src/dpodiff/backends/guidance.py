"""How a negative prompt steers sampling: the UNet's outputs for the prompts of one step, made into one.

cfg  classifier-free guidance with the negative prompt in the empty prompt's place (SD's negative prompt):
     e = e_neg + w (e_pos - e_neg). A negative that shares the prompt's content also cancels that content's
     guidance ("a red circle, blurry" against "a red circle" leaves little to guide towards the circle).
perp Perp-Neg (Armandpour et al. 2023): guidance from the empty prompt, minus only the part of the negative's
     direction perpendicular to the positive's: e = e_0 + w (d_pos - perp(d_neg, d_pos)), d_x = e_x - e_0.
     What the negative shares with the prompt no longer cancels it. One more UNet input per step (1.5x the
     cost). With an empty negative prompt both modes give the same output.
"""

from __future__ import annotations

import torch



def parts(mode: str) -> int:
    """UNet inputs per image and step: negative and positive, and for perp the empty prompt too."""
    return 3 if mode == "perp" else 2


def guide(outputs: torch.Tensor, guidance: float, mode: str) -> torch.Tensor:
    """One guided output from the UNet's outputs stacked as [negative; positive] (cfg) or [negative; positive; empty] (perp)."""
    if mode == "cfg":
        negative, positive = outputs.chunk(2)
        return negative + guidance * (positive - negative)
    negative, positive, empty = outputs.chunk(3)
    d_pos, d_neg = positive - empty, negative - empty
    dims = tuple(range(1, d_pos.ndim))
    wide = torch.promote_types(d_pos.dtype, torch.float32)  # the projection in float32 at least: sums overflow float16
    pos, neg = d_pos.to(wide), d_neg.to(wide)
    along = (neg * pos).sum(dims, keepdim=True) / (pos * pos).sum(dims, keepdim=True).clamp_min(1e-12)
    perpendicular = d_neg - (along * pos).to(d_neg.dtype)
    return empty + guidance * (d_pos - perpendicular)
