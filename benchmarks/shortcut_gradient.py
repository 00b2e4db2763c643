"""Peak memory and time of one GPO step against the number of sampling steps T: shortcut vs full back-propagation.

The shortcut keeps one UNet call on the autograd tape whatever T is; full back-propagation keeps all T.
Each (gradient, T) row runs in a FRESH process (multiprocessing "spawn"), so one row's high-water mark
cannot hide another's. That process builds the models, runs a warm-up without autograd (lazy kernel
and library set-up, at 2 sampling steps, so it stays below the step's own peak), reads its memory,
then runs one GPO step (relaxed encoding, loss, backward to the logits) and reads the peak:
  CPU:  the process's peak RSS (getrusage ru_maxrss, the whole life of the process) and the peak
        added by the step = ru_maxrss after the step - VmRSS just before it (freed heap handed back
        to the OS first with malloc_trim, so memory the warm-up freed is not counted as "before");
  CUDA: torch.cuda.max_memory_allocated, reset before the step; added = peak - allocated before.
The bytes autograd saves for backward (distinct storages) are shown too: they are what grows with T.

    .venv/bin/python benchmarks/shortcut_gradient.py                 # CPU, a UNet big enough that activations dominate
    .venv/bin/python benchmarks/shortcut_gradient.py --sd15 --device cuda   # SD 1.5 architecture, random weights, fp16
    .venv/bin/python benchmarks/shortcut_gradient.py --sd15 --steps 10 --no-full --checkpointing --threads 2   # GPO's checkpointing

--checkpointing adds rows of the shortcut with gradient checkpointing in the UNet's and the VAE's blocks
(Backend.checkpointed, GPOSettings.checkpointing), and the largest difference of its gradient from the plain one.

The last line is `shortcut peak-memory ratio T=<hi>/T=<lo>: <number>`, from the memory added by the step.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from dpodiff.backends import GenerationSettings, as_backend
from dpodiff.backends.shortcut import full_backprop_loss, shortcut_loss
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers.gradient import GPOSettings, gumbel_weights, initial_logits
from dpodiff.spaces import SearchSpace, Slot, Span
from dpodiff.tokenizers import clip_tokenizer

PROMPT = "a red circle above a blue square"
MiB = 2**20


def build(sd15: bool, device: torch.device, dtype: torch.dtype):
    """A backend (StableDiffusionPipeline) and a CLIP scorer with random weights and real architectures."""
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
    backend = as_backend(pipe)
    for module in (*backend.modules, clip.model):
        module.requires_grad_(False).eval()
    return backend, clip


class SavedTensorBytes:
    """Bytes of the distinct storages autograd saves for backward: the activation memory, which grows with T."""

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


def vm_rss_mib() -> float:
    """The process's resident memory now (VmRSS), after handing freed heap back to the OS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed memory resident; don't count it as in use
    except OSError:
        pass
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpo_loss(backend, clip, space, relaxed, logits, target, mode: str, steps: int) -> torch.Tensor:
    """GPO's loss for one Gumbel draw: relaxed encoding, then the shortcut or full back-propagation."""
    cond = relaxed(gumbel_weights(logits, space.sizes(), torch.Generator().manual_seed(0), 1.0))
    noise = backend.initial_noise(0)
    if mode.startswith("shortcut"):
        return shortcut_loss(backend, clip, cond, target, noise, 0, GPOSettings().t_index(0, steps), GenerationSettings(steps, 7.5))
    return full_backprop_loss(backend, clip, cond, target, noise, 0, GenerationSettings(steps, 7.5))


def measure(sd15: bool, device: str, threads: int, mode: str, steps: int, repeats: int) -> dict:
    """Run in a fresh process: build, warm up, then memory and best seconds of one GPO step."""
    torch.set_num_threads(threads)
    device = torch.device(device)
    backend, clip = build(sd15, device, torch.float16 if device.type == "cuda" else torch.float32)
    space = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "scarlet"])], negative=[Slot("red", ["blue", "green"]), Slot("q", ["blurry", "low quality"])])
    relaxed = backend.relaxed_encoders(space, True, True)
    target = clip.embed_text([PROMPT])
    built = vm_rss_mib()
    with torch.no_grad():  # warm-up: nothing saved for backward, and 2 steps, so it stays below the step's peak
        gpo_loss(backend, clip, space, relaxed, initial_logits(space.sizes(), device), target, "shortcut", 2)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / MiB
    else:
        before, peak_before = vm_rss_mib(), peak_rss_mib()
    row = {"rss_built": built, "before": before, "seconds": float("inf")}
    for i in range(repeats):
        logits = initial_logits(space.sizes(), device)
        start = time.perf_counter()
        with SavedTensorBytes() as saved, backend.checkpointed(mode == "shortcut, checkpointed"):
            loss = gpo_loss(backend, clip, space, relaxed, logits, target, mode, steps)
            loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        row["seconds"] = min(row["seconds"], time.perf_counter() - start)
        if i == 0:  # memory of the first step; later repeats only time it
            row["saved"] = saved.bytes / MiB
            row["peak"] = torch.cuda.max_memory_allocated() / MiB if device.type == "cuda" else peak_rss_mib()
            row["step_set_peak"] = device.type == "cuda" or row["peak"] > peak_before
            row["grad"] = logits.grad.double().tolist()
        del loss, logits
    row["added"] = row["peak"] - before
    return row


def fresh_process(*args) -> dict:
    """measure(*args) in a new spawned interpreter, so its peak is this measurement's alone."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sd15", action="store_true", help="the SD 1.5 architecture at 512x512 (use with --device cuda)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", default="10,25,50")
    parser.add_argument("--repeats", type=int, default=1, help="steps timed per process (memory is the first step's)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--no-full", action="store_true", help="skip full back-propagation")
    parser.add_argument("--checkpointing", action="store_true", help="also the shortcut with gradient checkpointing")
    args = parser.parse_args()
    cuda = torch.device(args.device).type == "cuda"
    step_counts = [int(s) for s in args.steps.split(",")]
    modes = ["shortcut"] + (["shortcut, checkpointed"] if args.checkpointing else []) + ([] if args.no_full else ["full"])
    rows = {(m, t): fresh_process(args.sd15, args.device, args.threads, m, t, args.repeats) for m in modes for t in step_counts}
    print(f"{'SD 1.5 architecture, 512x512' if args.sd15 else 'mid-size UNet, 256x256'}; {args.device}, "
          f"{'float16' if cuda else 'float32'}; one fresh process per row")
    if cuda:
        print("| gradient | T | peak allocated MiB | allocated before the step MiB | added by one GPO step MiB | autograd saved tensors MiB | seconds per step |")
        print("|---|---|---|---|---|---|---|")
    else:
        print("| gradient | T | peak RSS of a fresh process MiB | RSS after build MiB | RSS before the step MiB "
              "| peak RSS added by one GPO step MiB | autograd saved tensors MiB | seconds per step |")
        print("|---|---|---|---|---|---|---|---|")
    for (mode, t), r in rows.items():
        built = "" if cuda else f" {r['rss_built']:.0f} |"
        print(f"| {mode} | {t} | {r['peak']:.0f} |{built} {r['before']:.0f} | {r['added']:.0f} | {r['saved']:.0f} | {r['seconds']:.2f} |")
    for (mode, t), r in rows.items():
        if not r["step_set_peak"]:
            print(f"warning: {mode} T={t}: the step did not raise the process's peak RSS (the warm-up did); its added peak is a lower bound")
    if args.checkpointing:
        for t in step_counts:
            plain, ckpt = torch.tensor(rows[("shortcut", t)]["grad"]), torch.tensor(rows[("shortcut, checkpointed", t)]["grad"])
            print(f"T={t}: checkpointing's peak added / plain: {rows[('shortcut, checkpointed', t)]['added'] / rows[('shortcut', t)]['added']:.2f}, "
                  f"seconds: {rows[('shortcut, checkpointed', t)]['seconds'] / rows[('shortcut', t)]['seconds']:.2f}, "
                  f"largest gradient difference {(plain - ckpt).abs().max():.1e} (largest gradient {plain.abs().max():.1e})")
    lo, hi = min(step_counts), max(step_counts)
    added = {key: r["added"] for key, r in rows.items()}
    if "full" in modes:
        print(f"full back-propagation peak-memory ratio T={hi}/T={lo}: {added[('full', hi)] / added[('full', lo)]:.2f}")
    print(f"shortcut peak-memory ratio T={hi}/T={lo}: {added[('shortcut', hi)] / added[('shortcut', lo)]:.3f}")


if __name__ == "__main__":
    main()
