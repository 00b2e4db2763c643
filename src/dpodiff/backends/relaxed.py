"""Relaxed prompts: a prompt whose slots hold a weighted mix of their choices, encoded by CLIP.

A prompt is laid out as rows of token embeddings: fixed tokens (the words that never change),
and for each slot `width` rows, its longest choice's token count. Row r of a slot holds
sum_c w_c * E[token r of choice c] (zero where a choice is shorter) and a *presence*
keep_r = sum_c w_c * [choice c has a token r]. A row's presence acts three ways, so that
one-hot weights reproduce the discrete prompt's encoding exactly:
  - as an attention bias log(keep) on it as a key (absent rows are never attended to),
  - in the positions: a row's position is the presence of the rows before it (fractional
    positions interpolate between neighbouring position embeddings),
  - as the UNet's `encoder_attention_mask`, so its cross-attention skips absent rows too.
Trailing padding rows (up to the tokenizer's window) get presence from the same count, so
a one-hot layout has exactly the window's number of present rows, like the tokenizer's output.

`RelaxedEncoder` gathers every embedding row it will need once, on the encoder's device and in
its dtype; an encoding then only mixes them with the weights. The text encoder is run through its
public modules (token and position embeddings, encoder layers, final layer norm).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_BIAS = -10000.0  # what diffusers adds for a masked key; exp() of it is exactly 0 in float32


@dataclass
class Layout:
    """Token layout of a prompt with relaxed slots: fixed token ids and slots, in order."""

    pieces: list[list[int] | int]  # a list of token ids (fixed text) or a slot index
    choices: list[list[list[int]]]  # per slot, per choice, its token ids (may be empty)
    max_length: int  # the tokenizer's window, start and end tokens included
    bos: int | None  # None: the tokenizer adds no start token (T5)
    eos: int
    pad: int

    @property
    def specials(self) -> int:
        return 1 + (self.bos is not None)

    def width(self, slot: int) -> int:
        return max(len(ids) for ids in self.choices[slot])

    def fixed(self) -> int:
        return sum(len(p) for p in self.pieces if isinstance(p, list))

    def rows(self) -> int:
        """Rows up to and including the end-of-text token, every slot at its widest."""
        return self.specials + self.fixed() + sum(self.width(s) for s in range(len(self.choices)))

    def discrete_ids(self, picks: list[int]) -> list[int]:
        """The token ids of one discrete choice per slot, padded to the window as a tokenizer would."""
        ids = [] if self.bos is None else [self.bos]
        for piece in self.pieces:
            ids += piece if isinstance(piece, list) else self.choices[piece][picks[piece]]
        ids.append(self.eos)
        return ids + [self.pad] * (self.max_length - len(ids))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text.strip(), add_special_tokens=False).input_ids if text.strip() else []


def _layout(tokenizer, pieces_text: list[str | int], choices: list[list[str]], max_length: int | None = None) -> Layout:
    pieces = [p if isinstance(p, int) else _ids(tokenizer, p) for p in pieces_text]
    choice_ids = [[_ids(tokenizer, c) for c in slot] for slot in choices]
    max_length = max_length or int(tokenizer.model_max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    layout = Layout(pieces, choice_ids, max_length, tokenizer.bos_token_id, tokenizer.eos_token_id, pad)
    if layout.rows() > max_length:  # dpodiff.spaces.fit fits every space first; reaching this is a bug
        raise ValueError(f"the relaxed prompt needs {layout.rows()} token rows, more than the text encoder's {max_length}")
    return layout


def positive_layout(space, tokenizer, max_length: int | None = None, whole_words: bool = False) -> Layout:
    """The user's prompt with each span of the space as a slot. `whole_words`: each slot takes the whole
    whitespace-delimited chunk around its span (SentencePiece tokenizers such as T5's read a chunk as one unit,
    so "red," is not "red" then ","); CLIP's tokenizer splits punctuation off by itself."""
    prompt, pieces, choices = space.prompt, [], []
    cursor = 0
    for i, span in enumerate(space.positive):
        start, end = span.start, span.end
        if whole_words:
            while start > 0 and not prompt[start - 1].isspace():
                start -= 1
            while end < len(prompt) and not prompt[end].isspace():
                end += 1
        if start < cursor:
            raise ValueError(f"two searched spans share the word {prompt[start:end]!r}")
        pieces += [prompt[cursor:start], i]
        choices.append([prompt[start : span.start] + c + prompt[span.end : end] for c in span.choices])
        cursor = end
    pieces.append(prompt[cursor:])
    return _layout(tokenizer, pieces, choices, max_length)


def negative_layout(space, tokenizer, max_length: int | None = None) -> Layout:
    """The negative prompt: one slot per negative slot, each choice followed by its comma."""
    choices = [[f"{c}," if c else "" for c in slot.choices] for slot in space.negative]
    return _layout(tokenizer, list(range(len(choices))), choices, max_length)


@dataclass
class RelaxedEncoding:
    hidden: torch.Tensor  # [1, rows, D]: the states the UNet reads
    presence: torch.Tensor  # [1, rows]
    pooled: torch.Tensor  # [1, D]: the final-normed state at the end-of-text row (CLIP's pooled output)


def _text_modules(text_encoder):
    """CLIPTextModel and CLIPTextModelWithProjection keep embeddings, layers and final norm under .text_model."""
    return getattr(text_encoder, "text_model", text_encoder)


class RelaxedEncoder:
    """Encodes one layout under per-slot choice weights with one text encoder.

    `layer="last"` returns the final-normed last layer (SD 1.x/2.x); `"penultimate"` the input of the
    last layer, unnormed (what SDXL feeds its UNet).
    """

    def __init__(self, text_encoder, layout: Layout, layer: str = "last"):
        self.modules, self.layer = _text_modules(text_encoder), layer
        self.rows = MixedRows(self.modules.embeddings.token_embedding.weight, layout)
        self.eos_row = layout.rows() - 1
        self.position_table = self.modules.embeddings.position_embedding.weight.detach()

    def __call__(self, weights: list[torch.Tensor]) -> RelaxedEncoding:
        embeds, presence = self.rows(weights)
        position = torch.cumsum(presence, dim=1) - presence  # present rows before each row
        hidden = embeds + _interpolated_positions(self.position_table, position)
        mask = _attention_bias(presence)
        layers = self.modules.encoder.layers
        for layer in layers[:-1]:
            hidden = layer(hidden, mask)
        penultimate = hidden
        last = self.modules.final_layer_norm(layers[-1](hidden, mask))
        states = last if self.layer == "last" else penultimate
        return RelaxedEncoding(states, presence, last[:, self.eos_row])


class MixedRows:
    """A layout's token embedding rows under per-slot choice weights, with each row's presence (module docstring):
    what a relaxed encoder feeds its text encoder's layers. The rows it will need are gathered once."""

    def __init__(self, table: torch.Tensor, layout: Layout):
        table = table.detach()
        device, self.layout, self.dtype = table.device, layout, table.dtype
        # per piece: fixed rows [n, D]; per slot: presence [width, choices] and rows [width, choices, D]
        self.fixed = {i: table[torch.tensor(p, dtype=torch.long, device=device)] for i, p in enumerate(layout.pieces) if isinstance(p, list)}
        self.present, self.slot_rows = {}, {}
        for slot, choice_ids in enumerate(layout.choices):
            width = layout.width(slot)
            present = [[r < len(ids) for ids in choice_ids] for r in range(width)]
            ids = [[ids[r] if r < len(ids) else layout.pad for ids in choice_ids] for r in range(width)]
            self.present[slot] = torch.tensor(present, dtype=self.dtype, device=device)
            self.slot_rows[slot] = table[torch.tensor(ids, dtype=torch.long, device=device)]
        self.bos = None if layout.bos is None else table[layout.bos][None]
        self.eos, self.pad = table[layout.eos][None], table[layout.pad]
        self.n_pad = layout.max_length - layout.specials - layout.fixed()

    def __call__(self, weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings [1, rows, D], presence [1, rows]), padding rows included."""
        one = self.eos.new_ones(1)
        rows, keep = ([], []) if self.bos is None else ([self.bos], [one])
        for i, piece in enumerate(self.layout.pieces):
            if i in self.fixed:
                rows.append(self.fixed[i])
                keep.append(one.expand(len(self.fixed[i])))
                continue
            mix = self.present[piece] * weights[piece].to(self.dtype)  # [width, choices]
            rows.append(torch.einsum("rc,rcd->rd", mix, self.slot_rows[piece]))
            keep.append(mix.sum(1))
        rows.append(self.eos)
        keep.append(one)
        presence = torch.cat(keep)
        offsets = torch.arange(self.n_pad, device=presence.device, dtype=presence.dtype)
        pad_keep = (self.layout.max_length - presence.sum() - offsets).clamp(0, 1)  # padding fills the window, no further
        return torch.cat(rows + [self.pad.expand(self.n_pad, -1)])[None], torch.cat([presence, pad_keep])[None]


def _interpolated_positions(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    position = position.clamp(0, table.shape[0] - 1)
    low = position.detach().floor().long()
    high = (low + 1).clamp(max=table.shape[0] - 1)
    frac = (position - low.to(position.dtype))[..., None]
    return table[low] * (1 - frac) + table[high] * frac


def _attention_bias(presence: torch.Tensor) -> torch.Tensor:
    """Additive [1, 1, rows, rows] bias: causal, and log(presence) on each key (absent: NEG_BIAS)."""
    n = presence.shape[1]
    key = key_bias(presence)  # [1, rows]
    causal = torch.full((n, n), NEG_BIAS, dtype=presence.dtype, device=presence.device).triu(1)
    return (causal[None] + key[:, None, :])[:, None]


def key_bias(presence: torch.Tensor) -> torch.Tensor:
    safe = presence.clamp_min(torch.finfo(presence.dtype).tiny)  # float16 has no 1e-30
    return torch.where(presence > 0, torch.log(safe), torch.full_like(presence, NEG_BIAS))


def unet_mask(presence: torch.Tensor) -> torch.Tensor:
    """An `encoder_attention_mask` that diffusers turns into the bias log(presence), NEG_BIAS where absent.

    diffusers converts a mask m into the bias (1 - m) * NEG_BIAS, so m = 1 - bias / NEG_BIAS.
    """
    return 1 - key_bias(presence) / NEG_BIAS


def pad_rows(hidden: torch.Tensor, presence: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Append absent rows so that two encodings can share a batch."""
    extra = rows - hidden.shape[1]
    if extra <= 0:
        return hidden, presence
    return (
        torch.cat([hidden, hidden.new_zeros(hidden.shape[0], extra, hidden.shape[2])], 1),
        torch.cat([presence, presence.new_zeros(presence.shape[0], extra)], 1),
    )
