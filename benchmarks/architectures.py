"""Real architectures with random weights (no hub is reachable): SD 1.5, SDXL base, SD3.5 medium and Flux-dev, with a
CLIP ViT-B/32 scorer.

The configurations are those of runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0,
stabilityai/stable-diffusion-3.5-medium, black-forest-labs/FLUX.1-dev and openai/clip-vit-base-patch32; weights
are random, so images are noise, but every layer, and so every second and byte, is the real model's. The flow
families' T5-XXL reads a tokenizer built offline (dpodiff.testing.tiny_t5_tokenizer): its ids lie inside T5's
vocabulary, so the encoder's cost is the real one. They are built on the target device in the target dtype
(Flux-dev and T5-XXL hold 16.7B parameters: 67 GB in float32 on the host would take minutes).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from dpodiff.backends import as_backend
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.tokenizers import clip_tokenizer


def _text_config(**sizes):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, bos_token_id=49406, eos_token_id=49407, max_position_embeddings=77, **sizes)


def _vae(latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=latent_channels, **extra)


def _clip_l_text():
    return _text_config(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        hidden_act="quick_gelu", pad_token_id=49407)


def sd15_pipeline():
    """SD 1.5: UNet 320-1280 (860M), VAE 128-512, CLIP ViT-L/14 text encoder; DDIM."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    return StableDiffusionPipeline(
        vae=_vae(sample_size=512), text_encoder=CLIPTextModel(_clip_l_text()), tokenizer=clip_tokenizer(77),
        unet=UNet2DConditionModel(sample_size=64, cross_attention_dim=768),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def sdxl_pipeline():
    """SDXL base: UNet 320-1280 with 1/2/10 transformer layers (2.6B), CLIP ViT-L and OpenCLIP bigG text encoders; Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    )
    big_g = _text_config(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                         hidden_act="gelu", projection_dim=1280, pad_token_id=0)
    return StableDiffusionXLPipeline(
        vae=_vae(sample_size=1024, scaling_factor=0.13025, force_upcast=True), text_encoder=CLIPTextModel(_clip_l_text()),
        text_encoder_2=CLIPTextModelWithProjection(big_g), tokenizer=clip_tokenizer(77), tokenizer_2=clip_tokenizer(77, pad_token="!"),
        unet=unet, scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                                    timestep_spacing="leading"),
    )


def _clip_with_projection(big: bool):
    """SD3's text encoders: CLIP ViT-L/14 (768) or OpenCLIP bigG/14 (1280, pads with "!"), with projection."""
    from transformers import CLIPTextModelWithProjection

    if big:
        return CLIPTextModelWithProjection(_text_config(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                        num_attention_heads=20, hidden_act="gelu", projection_dim=1280, pad_token_id=0))
    return CLIPTextModelWithProjection(_text_config(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                                    hidden_act="quick_gelu", projection_dim=768, pad_token_id=49407))


def _t5_xxl():
    """google/t5-v1_1-xxl's encoder (4.8B parameters), as SD3 and Flux ship it."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_layers=24, num_heads=64,
                                   feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
                                   pad_token_id=0, eos_token_id=1))


def _flow_vae(scaling_factor: float, shift_factor: float):
    """SD3's and Flux's VAE: 16 latent channels, shifted and scaled latents, no quant convs."""
    return _vae(sample_size=1024, scaling_factor=scaling_factor, shift_factor=shift_factor, use_quant_conv=False,
                use_post_quant_conv=False, latent_channels=16)


def sd35m_pipeline():
    """SD3.5 medium: MMDiT-X, 24 layers of width 1536 with dual attention in the first 13 (2.2B), CLIP-L, CLIP-G, T5-XXL."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    from dpodiff.testing import tiny_t5_tokenizer

    transformer = SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                                        attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                                        caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
                                        dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_flow_vae(1.5305, 0.0609),
        text_encoder=_clip_with_projection(big=False), tokenizer=clip_tokenizer(77),
        text_encoder_2=_clip_with_projection(big=True), tokenizer_2=clip_tokenizer(77, pad_token="!"),
        text_encoder_3=_t5_xxl(), tokenizer_3=tiny_t5_tokenizer(256),
    )


def flux_dev_pipeline():
    """Flux-dev: 19 joint and 38 single-stream blocks of width 3072 with embedded guidance (11.9B), CLIP-L (pooled), T5-XXL."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    from dpodiff.testing import tiny_t5_tokenizer

    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                                         num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                                         guidance_embeds=True, axes_dims_rope=(16, 56, 56))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256, max_image_seq_len=4096,
                                                base_shift=0.5, max_shift=1.15)
    return FluxPipeline(transformer=transformer, scheduler=scheduler, vae=_flow_vae(0.3611, 0.1159),
                        text_encoder=CLIPTextModel(_clip_l_text()), tokenizer=clip_tokenizer(77),
                        text_encoder_2=_t5_xxl(), tokenizer_2=tiny_t5_tokenizer(512))


PIPELINES = {"sd15": sd15_pipeline, "sdxl": sdxl_pipeline, "sd35m": sd35m_pipeline, "flux": flux_dev_pipeline}


def clip_b32_scorer(device: torch.device, dtype: torch.dtype) -> ClipScorer:
    """CLIP ViT-B/32, the paper's scorer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(1)
    config = CLIPConfig(text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                                         vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
                        vision_config=dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                           num_attention_heads=12), projection_dim=512)
    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    model = CLIPModel(config).to(device, dtype).requires_grad_(False).eval()
    return ClipScorer.from_parts(model, clip_tokenizer(77), processor, "CLIP ViT-B/32 (random weights)")


@contextmanager
def built_on(device: torch.device, dtype: torch.dtype):
    """Modules constructed inside are initialised on `device` in `dtype` (no float32 copy on the host)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(before)


def build(family: str, device: torch.device, dtype: torch.dtype):
    """(backend, scorer) of `family` (a key of PIPELINES) on `device` in `dtype`, frozen as load_pipeline leaves them."""
    torch.manual_seed(0)
    with built_on(device, dtype):
        pipe = PIPELINES[family]()
    pipe = pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    backend = as_backend(pipe)  # SDXL's backend keeps its VAE in float32 (force_upcast), as when loaded
    for module in backend.modules:
        module.requires_grad_(False).eval()
    return backend, clip_b32_scorer(device, dtype)
