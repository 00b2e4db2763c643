"""Tiny real models built from configs: random weights, real architectures.

UNet2DConditionModel, AutoencoderKL, a CLIPTextModel with the real CLIP BPE vocabulary and a CLIPModel
scorer (and an SDXL pipeline with its two text encoders, PickScore and aesthetic-predictor stand-ins), saved with `save_pretrained`, so tests and benchmarks load them through the same code as a
user's model. They draw noise; they exist to exercise code paths in a second.
"""

import contextlib
from pathlib import Path

import torch

TINY_MAX_TOKENS = 77


def build_tiny_pipeline(path: Path) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=4, attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text_encoder = CLIPTextModel(_text_config(32))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(TINY_MAX_TOKENS), unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def _text_config(hidden: int, pad_token_id: int = 49407, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=TINY_MAX_TOKENS, bos_token_id=49406, eos_token_id=49407, pad_token_id=pad_token_id, **extra)


def build_tiny_text_encoder(path: Path, seed: int = 0, near: dict[str, list[str]] | None = None) -> Path:
    """A tiny CLIP text encoder (the full CLIP vocabulary) with a CLIP tokenizer beside it, saved as a
    pipeline's `text_encoder/` and `tokenizer/` folders under `path`. Its token embeddings are random, but
    the words of `near` ({word: neighbours}) are planted around each word, nearest first, as a trained
    encoder's would be: the embedding source then finds real words, not random tokens."""
    from transformers import CLIPTextModel

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    model = CLIPTextModel(_text_config(16))
    table = model.get_input_embeddings().weight.data
    vocab = tokenizer.get_vocab()
    for word, neighbours in (near or {}).items():
        centre = table[vocab[word + "</w>"]]
        for i, other in enumerate(neighbours, start=1):
            direction = torch.nn.functional.normalize(torch.randn_like(centre), dim=0)
            table[vocab[other + "</w>"]] = centre + 0.05 * i * centre.norm() * direction
    tokenizer.save_pretrained(Path(path) / "tokenizer")
    model.save_pretrained(Path(path) / "text_encoder")
    return Path(path)


def build_tiny_sdxl(path: Path) -> Path:
    """An SDXL pipeline: two text encoders (the second with projection and "!" padding, as SDXL's),
    a UNet reading pooled text and size ids, an Euler scheduler; 16-pixel images."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(2)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=4, use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32 + 16, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(_text_config(32)), text_encoder_2=CLIPTextModelWithProjection(_text_config(16, 0, projection_dim=16)),
        tokenizer=clip_tokenizer(TINY_MAX_TOKENS), tokenizer_2=clip_tokenizer(TINY_MAX_TOKENS, pad_token="!"), unet=unet, scheduler=scheduler,
    )
    pipe.save_pretrained(path)
    return path


def tiny_t5_tokenizer(model_max_length: int = 512):
    """A SentencePiece-style (Unigram, "▁" word marks, "</s>" appended) T5 tokenizer built offline with the `tokenizers`
    library: every alphabetic word of the CLIP vocabulary as one piece, and single characters for the rest."""
    import json
    import math

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    from dpodiff.tokenizers import CLIP_TOKENIZER_DIR

    vocab = json.loads((CLIP_TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    words = sorted({t[:-4] for t in vocab if t.endswith("</w>") and t[:-4].isalpha()}, key=lambda w: vocab[w + "</w>"])
    chars = sorted({c for w in words for c in w} | set(",.!?;:'-()0123456789"))
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)] + [("▁" + c, -8.0) for c in chars] + [(c, -9.0) for c in chars]
    pieces += [("▁" + w, -3.0 - math.log(2 + i)) for i, w in enumerate(words)]  # earlier (commoner) words score higher
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0,
                           model_max_length=model_max_length)


def build_tiny_sd3(path: Path) -> Path:
    """An SD3.5-style pipeline: two CLIP encoders with projection (the second pads with "!"), a T5 encoder with
    relative-position buckets small enough that prompts reach the logarithmic ones, an MMDiT with one dual-attention
    block and RMS-normed queries and keys, a VAE that shifts its latents, flow-matching Euler with shift 3; 16-pixel images."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(7)
    t5_tokenizer = tiny_t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=64, caption_projection_dim=16, pooled_projection_dim=32, pos_embed_max_size=8,
        dual_attention_layers=(0,), qk_norm="rms_norm",
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(),
        text_encoder=CLIPTextModelWithProjection(_text_config(32, projection_dim=16)), tokenizer=clip_tokenizer(TINY_MAX_TOKENS),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(16, 0, projection_dim=16)), tokenizer_2=clip_tokenizer(TINY_MAX_TOKENS, pad_token="!"),
        text_encoder_3=_tiny_t5(t5_tokenizer), tokenizer_3=t5_tokenizer,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_flux(path: Path) -> Path:
    """A Flux-dev-style pipeline: CLIP (pooled output only) and T5, an MMDiT with one joint and one single-stream block,
    embedded guidance and rotary positions, 2x2-packed latents, flow-matching Euler with the resolution-dependent
    shift; 16-pixel images (the VAE's sample_size, which is how Flux's VAE names its 1024)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(8)
    t5_tokenizer = tiny_t5_tokenizer()
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
                                         num_attention_heads=2, joint_attention_dim=64, pooled_projection_dim=32, guidance_embeds=True,
                                         axes_dims_rope=(2, 2, 4))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_image_seq_len=4, max_image_seq_len=64)
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=_flow_vae(), text_encoder=CLIPTextModel(_text_config(32)),
                        tokenizer=clip_tokenizer(TINY_MAX_TOKENS), text_encoder_2=_tiny_t5(t5_tokenizer), tokenizer_2=t5_tokenizer)
    pipe.save_pretrained(path)
    return path


def _flow_vae():
    """A VAE that shifts its latents (SD3's and Flux's do), 16-pixel images."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4, sample_size=16,
                         shift_factor=0.1, scaling_factor=1.5, use_quant_conv=False, use_post_quant_conv=False,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)


def _tiny_t5(tokenizer):
    """A T5 encoder whose relative-position buckets are few enough that prompts reach the logarithmic ones."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=64, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0, eos_token_id=1))


def build_tiny_scorer(path: Path, seed: int = 1, **config) -> Path:
    """A tiny CLIPModel (projection 16, 16-pixel images) with tokenizer and processor; `config` adds CLIPConfig fields."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from dpodiff.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=TINY_MAX_TOKENS, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(image_size=16, patch_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4),
        projection_dim=16, **config,
    )
    CLIPModel(config).save_pretrained(path)
    clip_tokenizer(TINY_MAX_TOKENS).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(path)
    return path


def build_tiny_pickscore(path: Path) -> Path:
    """A PickScore stand-in: a tiny CLIPModel with a logit scale of its own (PickScore_v1 learned one), its tokenizer
    and processor saved beside it; load it with `pickscore:PATH`."""
    return build_tiny_scorer(path, seed=4, logit_scale_init_value=3.0)


def build_tiny_aesthetic(path: Path) -> Path:
    """An aesthetic-predictor folder: a tiny CLIPModel and a linear head on its 16-dimensional image embedding, saved
    as LAION's sa_0_4_vit_l_14_linear.pth is (the state dict of nn.Linear); load it with `aesthetic:PATH`."""
    build_tiny_scorer(path, seed=5)
    torch.manual_seed(6)
    torch.save(torch.nn.Linear(16, 1).state_dict(), Path(path) / "sa_tiny_linear.pth")
    return path


def one_hot(picks, sizes) -> list[torch.Tensor]:
    """float64 one-hot weights: a relaxed prompt at a vertex, which must encode like the discrete one."""
    return [torch.nn.functional.one_hot(torch.tensor(k), n).double() for k, n in zip(picks, sizes)]


def finite_difference_check(loss, sizes: list[int], eps: float = 1e-6) -> None:
    """The autograd gradient of loss(logits) matches central differences (float64 models)."""
    generator = torch.Generator().manual_seed(3)
    logits = [torch.rand(k, generator=generator, dtype=torch.float64).requires_grad_() for k in sizes]
    loss(logits).backward()
    analytic = torch.cat([z.grad for z in logits])
    numeric = []
    for g in range(len(logits)):
        for i in range(len(logits[g])):
            values = []
            for sign in (1, -1):
                shifted = [z.detach().clone() for z in logits]
                shifted[g][i] += sign * eps
                with torch.no_grad():
                    values.append(loss(shifted).item())
            numeric.append((values[0] - values[1]) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert analytic.abs().max() > 1e-6  # the gradient is not trivially zero
    torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-9)


@contextlib.contextmanager
def float64_arithmetic():
    """transformers' T5LayerNorm and diffusers' RMSNorm take the variance in float32, and diffusers' rotary embedding
    (Flux) rotates in float32, whatever the model's dtype: float32 rounding then drowns the finite differences of a
    float64 model. Within this context all three keep the input's dtype."""
    import diffusers.models.transformers.transformer_flux as flux
    from diffusers.models.normalization import RMSNorm
    from transformers.models.t5.modeling_t5 import T5LayerNorm

    def norm(self, hidden_states):
        eps = self.eps if hasattr(self, "eps") else self.variance_epsilon
        out = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + eps)
        if getattr(self, "weight", None) is not None:
            out = out * self.weight
        return out + self.bias if getattr(self, "bias", None) is not None else out

    def rotary(x, freqs_cis, use_real=True, use_real_unbind_dim=-1, sequence_dim=2):  # Flux's form: pairs of neighbours
        shape = [1] * x.ndim
        shape[sequence_dim], shape[-1] = freqs_cis[0].shape
        cos, sin = (f.view(shape).to(x) for f in freqs_cis)
        real, imag = x.unflatten(-1, (-1, 2)).unbind(-1)
        return x * cos + torch.stack([-imag, real], -1).flatten(-2) * sin

    patched = [(RMSNorm, "forward", norm), (T5LayerNorm, "forward", norm), (flux, "apply_rotary_emb", rotary)]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, value in patched:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in originals:
            setattr(owner, name, value)


def check_shortcut_gradient(backend, scorer, space, t_index: int, steps: int = 4, guidance: float = 7.5,
                            negative_mode: str = "cfg") -> None:
    """d(loss)/d(logits) through the relaxed encoding, one UNet step, the x0 estimate, the VAE and CLIP
    matches finite differences. The shortcut treats x_t (sampled without gradient) as a constant, so x_t is
    sampled once, at the logits where the gradient is taken, and held fixed for the differences too."""
    from dpodiff.backends import GenerationSettings
    from dpodiff.backends.schedulers import gradient_position
    from dpodiff.backends.base import sample_until
    from dpodiff.backends.shortcut import one_step_loss

    relaxed = backend.relaxed_encoders(space, positive=True, negative=True, negative_mode=negative_mode)
    target = scorer.target(space.prompt)
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        target = target.double()
    settings = GenerationSettings(steps, guidance)
    scheduler = backend.scheduler(settings)
    position = gradient_position(scheduler, t_index, steps)
    noise = backend.initial_noise(0)
    fixed = {}

    def loss(logits):
        cond = relaxed([torch.softmax(z, 0) for z in logits])
        if "x_t" not in fixed:
            fixed["x_t"] = sample_until(backend, scheduler, cond, noise, position, settings)
        return one_step_loss(backend, scorer, scheduler, position, fixed["x_t"], cond, target, settings)

    finite_difference_check(loss, space.sizes())
