"""Real architectures with random weights (no hub is reachable): SD 1.5 and SDXL base, with a CLIP ViT-B/32 scorer.

The configurations are those of runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0
and openai/clip-vit-base-patch32; weights are random, so images are noise, but every layer, and so
every second and byte, is the real model's.
"""

from __future__ import annotations

import torch

from dpodiff.backends import as_backend
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.tokenizers import clip_tokenizer


def _text_config(**sizes):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, bos_token_id=49406, eos_token_id=49407, max_position_embeddings=77, **sizes)


def _vae(**extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, **extra)


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


def build(family: str, device: torch.device, dtype: torch.dtype):
    """(backend, scorer) of `family` ("sd15" or "sdxl") on `device` in `dtype`, frozen as load_pipeline leaves them."""
    pipe = {"sd15": sd15_pipeline, "sdxl": sdxl_pipeline}[family]()
    pipe = pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    backend = as_backend(pipe)  # SDXL's backend keeps its VAE in float32 (force_upcast), as when loaded
    for module in backend.modules:
        module.requires_grad_(False).eval()
    return backend, clip_b32_scorer(device, dtype)
