"""Joint attention (SD3's MMDiT) that can leave text rows out, for relaxed prompts.

A relaxed prompt has rows that are absent at a vertex (a slot's shorter choices). The UNet's
cross-attention skips them through `encoder_attention_mask`; SD3's joint attention has no mask, so
this processor adds log(presence) of each text row to the scores of every query against it as a key
(image keys get 0). With no bias given it is diffusers' own processor, unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class TextKeyBias:
    """Wraps a joint-attention processor; `joint_attention_kwargs={"attention_mask": bias}` with bias [B, text rows]."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        if attention_mask is None or encoder_hidden_states is None:  # SD3.5's image-only second attention reads no text
            return self.processor(attn, hidden_states, encoder_hidden_states, **kwargs)
        batch, image_rows = hidden_states.shape[:2]

        def heads(x: torch.Tensor, norm=None) -> torch.Tensor:
            x = x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)
            return x if norm is None else norm(x)

        query = torch.cat([heads(attn.to_q(hidden_states), attn.norm_q), heads(attn.add_q_proj(encoder_hidden_states), attn.norm_added_q)], 2)
        key = torch.cat([heads(attn.to_k(hidden_states), attn.norm_k), heads(attn.add_k_proj(encoder_hidden_states), attn.norm_added_k)], 2)
        value = torch.cat([heads(attn.to_v(hidden_states)), heads(attn.add_v_proj(encoder_hidden_states))], 2)
        bias = torch.cat([attention_mask.new_zeros(batch, image_rows), attention_mask], 1)[:, None, None, :].to(query.dtype)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias).transpose(1, 2).flatten(2).to(query.dtype)
        image, text = out[:, :image_rows], out[:, image_rows:]
        image = attn.to_out[1](attn.to_out[0](image))
        if attn.context_pre_only:
            return image, text
        return image, attn.to_add_out(text)
