"""Memory and time of one GPO step against the number of sampling steps T: shortcut vs full back-propagation.

The shortcut keeps one UNet call on the autograd tape whatever T is; full back-propagation keeps all T.
Memory is accounted from allocations, not process RSS: on CUDA the allocator's peak
(torch.cuda.max_memory_allocated); on the CPU the bytes of every tensor autograd saves for the
backward pass (unique storages, counted as they are saved: the activation memory, which is what
grows with T), plus the weights.

    .venv/bin/python benchmarks/shortcut_gradient.py                 # CPU, a UNet big enough that activations dominate
    .venv/bin/python benchmarks/shortcut_gradient.py --sd15 --device cuda   # SD 1.5 architecture, random weights, fp16

The last line is `shortcut peak-memory ratio T=50/T=10: <number>`.
"""

from __future__ import annotations

import argparse
import time

import torch

from dpodiff.backends.relaxed import encode_relaxed, negative_layout, positive_layout
from dpodiff.backends.shortcut import full_backprop_loss, shortcut_loss
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers.gradient import GPOSettings, gumbel_weights, initial_logits
from dpodiff.spaces import SearchSpace, Slot, Span
from dpodiff.tokenizers import clip_tokenizer

PROMPT = "a red circle above a blue square"


def build(sd15: bool, device: torch.device, dtype: torch.dtype):
    """A StableDiffusionPipeline and a CLIP scorer with random weights and real architectures."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    if sd15:  # SD 1.5: UNet 320-1280, VAE 128-512, CLIP ViT-L/14 text encoder; scorer CLIP ViT-B/32
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512)
        text = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768)
        scorer = CLIPConfig(text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
                            vision_config=dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
                            projection_dim=512)
        size = 224
    else:  # activations dominate: a mid-size UNet on 32x32 latents (256x256 images)
        unet = UNet2DConditionModel(sample_size=32, block_out_channels=(32, 64, 128), layers_per_block=1, cross_attention_dim=64,
                                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8, attention_head_dim=8)
        vae = AutoencoderKL(block_out_channels=(16, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=8)
        text = CLIPTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
        scorer = CLIPConfig(text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
                            vision_config=dict(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
                            projection_dim=32)
        size = 64
    for config in (text, scorer.text_config):
        config.vocab_size, config.bos_token_id, config.eos_token_id, config.pad_token_id = 49408, 49406, 49407, 49407
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=CLIPTextModel(text), tokenizer=clip_tokenizer(77), unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(device, dtype)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    clip = ClipScorer.from_parts(CLIPModel(scorer).to(device, dtype), clip_tokenizer(77), processor, "random CLIP")
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, clip.model):
        module.requires_grad_(False)
    return pipe, clip


class SavedTensorBytes:
    """Bytes of the distinct storages autograd saves for backward (the activation memory)."""

    def __init__(self):
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.seen and not isinstance(tensor, torch.nn.Parameter):
            self.seen.add(storage.data_ptr())
            self.bytes += storage.nbytes()
        return tensor

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


def measure(pipe, clip, mode: str, steps: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """(peak MB, seconds) of one GPO step: relaxed encoding, loss, backward to the logits."""
    space = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "scarlet"])], negative=[Slot("red", ["blue", "green"]), Slot("q", ["blurry", "low quality"])])
    pos_layout, neg_layout = positive_layout(space, pipe.tokenizer), negative_layout(space, pipe.tokenizer)
    target = clip.embed_text([PROMPT])
    t_index = GPOSettings().t_index(0, steps)
    weight_bytes = sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.vae, pipe.text_encoder, clip.model) for p in m.parameters())
    best_seconds, peak = float("inf"), 0.0
    for _ in range(repeats):
        logits = initial_logits(space.sizes())
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with SavedTensorBytes() as saved:
            w = gumbel_weights(logits, torch.Generator().manual_seed(0), 1.0)
            positive = encode_relaxed(pipe.text_encoder, pos_layout, w[:1])
            negative = encode_relaxed(pipe.text_encoder, neg_layout, w[1:])
            if mode == "shortcut":
                loss = shortcut_loss(pipe, clip, negative, positive, target, 0, t_index, steps, 7.5)
            else:
                loss = full_backprop_loss(pipe, clip, negative, positive, target, 0, steps, 7.5)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = (weight_bytes + saved.bytes) / 2**20
        best_seconds = min(best_seconds, time.perf_counter() - start)
    return peak, best_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sd15", action="store_true", help="the SD 1.5 architecture at 512x512 (use with --device cuda)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", default="10,25,50")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-full", action="store_true", help="skip full back-propagation")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe, clip = build(args.sd15, device, dtype)
    step_counts = [int(s) for s in args.steps.split(",")]
    modes = ["shortcut"] + ([] if args.no_full else ["full"])
    rows = {(m, t): measure(pipe, clip, m, t, device, args.repeats) for m in modes for t in step_counts}
    memory = "peak allocated MB" if device.type == "cuda" else "weights + saved activations MB"
    print(f"{'SD 1.5 architecture, 512x512' if args.sd15 else 'mid-size UNet, 256x256'}; {device}, {dtype}")
    print(f"| gradient | T | {memory} | seconds per step |")
    print("|---|---|---|---|")
    for (mode, t), (mb, seconds) in rows.items():
        print(f"| {mode} | {t} | {mb:.1f} | {seconds:.2f} |")
    lo, hi = min(step_counts), max(step_counts)
    if "full" in modes:
        print(f"full back-propagation peak-memory ratio T={hi}/T={lo}: {rows[('full', hi)][0] / rows[('full', lo)][0]:.2f}")
    print(f"shortcut peak-memory ratio T={hi}/T={lo}: {rows[('shortcut', hi)][0] / rows[('shortcut', lo)][0]:.3f}")


if __name__ == "__main__":
    main()
