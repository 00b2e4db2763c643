"""Relaxed prompts through a T5 encoder (SD3, Flux): the same layout and presence as relaxed.py's CLIP encoder.

T5 has no position embeddings: its layers add a learned bias per relative position (key minus query,
in buckets) to the attention scores. A row's position is again the presence of the rows before it, so a
relative position may be fractional; its bias then interpolates between the two neighbouring whole
positions' biases. At one-hot weights every present row sits at a whole position and the bias is T5's
own. An absent row is never attended to (log presence on it as a key). There is no start token, and
the pipelines pad to their `max_sequence_length` and attend to the padding, so padding rows count as
present up to that window, as in the CLIP encoder.
"""

from __future__ import annotations

import torch

from dpodiff.backends.relaxed import Layout, MixedRows, RelaxedEncoding, key_bias, negative_layout, positive_layout


class T5RelaxedEncoder:
    """Encodes one layout (made with the pipeline's `max_sequence_length` as its window) under per-slot
    choice weights with a T5EncoderModel; returns the final-normed last layer."""

    def __init__(self, text_encoder, layout: Layout):
        self.encoder, self.layout = text_encoder.encoder, layout
        self.rows = MixedRows(text_encoder.get_input_embeddings().weight, layout)
        self.dtype = self.rows.dtype
        self.attention = self.encoder.block[0].layer[0].SelfAttention  # the layer that owns the relative-position table

    def __call__(self, weights: list[torch.Tensor]) -> RelaxedEncoding:
        hidden, presence = self.rows(weights)
        position = (torch.cumsum(presence, dim=1) - presence)[0]
        bias = self.position_bias(position) + key_bias(presence)[:, None, None, :]
        for block in self.encoder.block:
            hidden = block(hidden, position_bias=bias)[0]
        hidden = self.encoder.final_layer_norm(hidden)
        return RelaxedEncoding(hidden, presence, hidden[:, self.layout.rows() - 1])

    def position_bias(self, position: torch.Tensor) -> torch.Tensor:
        """[1, heads, rows, rows]: T5's relative-position bias at (possibly fractional) positions."""
        relative = position[None, :] - position[:, None]  # key minus query
        low = relative.detach().floor()
        frac = (relative - low)[..., None]
        attention = self.attention

        def bias(whole: torch.Tensor) -> torch.Tensor:
            bucket = attention._relative_position_bucket(whole.long(), bidirectional=True, num_buckets=attention.relative_attention_num_buckets,
                                                         max_distance=attention.relative_attention_max_distance)
            return attention.relative_attention_bias(bucket)

        values = bias(low) * (1 - frac) + bias(low + 1) * frac  # [rows, rows, heads]
        return values.permute(2, 0, 1)[None].to(self.dtype)


def with_t5(relaxed, space, positive: bool, negative: bool, text_encoder, tokenizer, window: int):
    """A RelaxedPrompt (backends/base.py) with a T5 encoder appended to its positive and negative encoders; a part
    not searched is the fixed text, as for the CLIP encoders."""
    from dpodiff.spaces import SearchSpace

    fixed = SearchSpace(space.prompt)
    relaxed.positive.append(T5RelaxedEncoder(text_encoder, positive_layout(space if positive else fixed, tokenizer, window, whole_words=True)))
    relaxed.negative.append(T5RelaxedEncoder(text_encoder, negative_layout(space if negative else fixed, tokenizer, window)))
    return relaxed
