"""Speed and memory of dpodiff on real architectures: SD 1.5, SDXL, SD3.5 medium and Flux-dev (random weights) on a GPU;
tiny models on the CPU.

Per model, one table:
  weights               parameters of UNet, VAE, text encoders and scorer, and their bytes in the run's dtype;
  EPO evaluation batch  one pipeline call of B candidates x 1 seed, generated and scored (B: dpodiff's default batch);
  GPO iteration         one shortcut-gradient step (relaxed encoding, sampling to t without grad, one guided UNet
                        call, VAE decode and scorer with grad, backward to the logits), the mean after a warm-up;
                        with gradient checkpointing (GPO's GPU default) and, first, without it as the baseline;
  hybrid run            the paper's budget: 20 GPO iterations, then 40 candidates, 1 seed (optimize() end to end);
and the images per second of B images made and scored in four patterns:
  reference pattern     one image per pipeline call, prompts re-encoded for every evaluation, PIL images out and
                        back to tensors for CLIP, the text re-embedded (how the DPO-Diff reference evaluates);
  one candidate a call  dpodiff's tensor path with batch size 1;
  default batch         dpodiff's tensor path, B images per call (what optimize() uses on a GPU);
  classic attention     the default batch with diffusers' AttnProcessor instead of PyTorch SDPA (what SDPA pays; UNets only);
  torch.compile         the default batch with the UNet compiled (--compile only; compiling takes minutes).
Peak memory is torch.cuda.max_memory_allocated, reset before each measurement ("-" on the CPU).

    .venv/bin/python benchmarks/gpu.py                  # CUDA: SD 1.5 at 512 px and SDXL at 1024 px, float16, 50 steps
    .venv/bin/python benchmarks/gpu.py --models sd15 --dtype bfloat16
    .venv/bin/python benchmarks/gpu.py --models sd35m,flux --dtype bfloat16 --steps 28 --size 512   # flow families
    .venv/bin/python benchmarks/gpu.py --tiny           # CPU: the tiny test models, loaded from disk as users' are (CI runs this)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):  # loading chatter would bury the tables
    os.environ.setdefault(variable, "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from architectures import PIPELINES, build  # noqa: E402

import dpodiff  # noqa: E402
from dpodiff.backends import GenerationSettings, Request  # noqa: E402
from dpodiff.gradient_search import run_gpo  # noqa: E402
from dpodiff.models import DTYPES  # noqa: E402
from dpodiff.backends.memory import default_batch_size  # noqa: E402
from dpodiff.optimizers import GPOSettings  # noqa: E402
from dpodiff.report.images import from_pil  # noqa: E402
from dpodiff.spaces import SearchSpace, Slot, Span  # noqa: E402
from dpodiff.tasks import make_task  # noqa: E402
from dpodiff.threads import use_threads  # noqa: E402

PROMPT = "a red circle above a blue square"
SPACE = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "scarlet"])],
                    negative=[Slot("red", ["green", "yellow", "orange"]), Slot("square", ["triangle", "circle"]),
                              Slot("quality", ["blurry", "low quality", "noisy"])])
TASK = make_task("improve", positive=True)
MiB = 2**20


@contextmanager
def measured(device: torch.device, out: dict):
    """Wall seconds and peak GPU memory of the block, into `out`."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    yield out
    if cuda:
        torch.cuda.synchronize(device)
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = torch.cuda.max_memory_allocated(device) / MiB if cuda else None


def candidate_requests(n: int) -> list[Request]:
    """n distinct candidates of SPACE (the original first), one seed each: what one EPO batch scores."""
    sizes = TASK.sizes(SPACE)
    candidates, i = [], 0
    while len(candidates) < n:
        candidate, rest = [], i
        for size in sizes:
            candidate.append(rest % size)
            rest //= size
        candidates.append(candidate)
        i += 1
    return [Request(*TASK.render(SPACE, c), seed=k) for k, c in enumerate(candidates)]


def tensor_path(backend, scorer, requests, settings) -> None:
    target = scorer.target(PROMPT)
    with torch.inference_mode():
        scorer.loss(backend.generate(requests, settings), target).tolist()


def reference_pattern(backend, scorer, requests, settings) -> None:
    """One image per call from strings (re-encoded each time), PIL out, back to tensors, text re-embedded."""
    pipe = backend.pipe
    kept = pipe.vae.dtype
    pipe.vae.to(backend.dtype)  # as loaded: diffusers itself upcasts SDXL's VAE around each decode
    true_cfg = {"true_cfg_scale": backend.guidance_scale(settings)} if backend.distilled_guidance else {}
    with torch.inference_mode():
        for r in requests:
            image = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, num_inference_steps=settings.steps,
                         guidance_scale=settings.guidance, generator=torch.Generator("cpu").manual_seed(r.seed),
                         height=settings.height or backend.native_size, width=settings.width or backend.native_size, **true_cfg).images
            scorer.loss(from_pil(image).to(backend.device), scorer.target(PROMPT)).tolist()
    pipe.vae.to(kept)


@contextmanager
def classic_attention(backend):
    from diffusers.models.attention_processor import AttnProcessor

    unet = backend.pipe.unet
    before = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        yield
    finally:
        unet.set_attn_processor(before)


def parameters(backend, scorer) -> int:
    return sum(p.numel() for m in (*backend.modules, scorer.model) for p in m.parameters())


def bench_model(name: str, backend, scorer, args) -> tuple[list, list]:
    device = backend.device
    side = args.size or backend.native_size
    settings = GenerationSettings(steps=args.steps, guidance=args.guidance, height=side, width=side)
    batch = args.batch or default_batch_size(1, side ** 2)
    requests = candidate_requests(batch)
    one_call = replace(settings, batch_size=batch)
    tensor_path(backend, scorer, requests[:1], settings)  # warm-up: kernels, allocator, lazy imports

    rows, speed = [], []
    n = parameters(backend, scorer)
    size = torch.finfo(backend.dtype).bits // 8
    in_float32 = "" if size == 4 else f"; {n * 4 / MiB:,.0f} MiB in float32"
    rows.append(("weights", f"{n / 1e6:.0f}M parameters", None, f"{n * size / MiB:,.0f} MiB in {args.dtype}{in_float32}"))
    with measured(device, {}) as m:
        tensor_path(backend, scorer, requests, one_call)
    rows.append(("EPO evaluation batch", m["seconds"], m["peak_mib"], f"{batch} candidates x 1 seed, one call"))
    for checkpointing, label in (("off", "GPO iteration, no checkpointing"), ("on", "GPO iteration")):  # the baseline first
        with measured(device, {}) as m:
            _, trace = run_gpo(backend, scorer, SPACE, TASK, [0], settings, GPOSettings(iterations=3, checkpointing=checkpointing))
        rows.append((label, sum(trace.seconds[1:]) / 2, m["peak_mib"], f"mean of iterations 2-3; gradient checkpointing {checkpointing}"))
    with measured(device, {}) as m:
        result = dpodiff.optimize(PROMPT, pipeline=backend, scorer=scorer, space=SPACE, algorithm="hybrid", budget=args.budget, seeds=[0],
                                  steps=args.steps, guidance=args.guidance, height=side, width=side, positive=True,
                                  gpo_settings=GPOSettings(iterations=args.iterations))
    rows.append(("hybrid run", m["seconds"], m["peak_mib"], f"{args.iterations} GPO iterations + {result.evaluations} candidates, 1 seed"))

    patterns = [("reference pattern", lambda: reference_pattern(backend, scorer, requests, settings)),
                ("one candidate a call", lambda: tensor_path(backend, scorer, requests, replace(settings, batch_size=1))),
                ("default batch", lambda: tensor_path(backend, scorer, requests, one_call))]
    if not args.no_classic_attention and backend.denoiser_name == "unet":
        patterns.append(("classic attention", lambda: _with(classic_attention(backend), lambda: tensor_path(backend, scorer, requests, one_call))))
    if args.compile:
        patterns.append(("torch.compile", lambda: _compiled(backend, lambda: tensor_path(backend, scorer, requests, one_call))))
    for label, run in patterns:
        with measured(device, {}) as m:
            run()
        speed.append((label, len(requests) / m["seconds"], m["peak_mib"]))
    return rows, speed


def _with(context, run):
    with context:
        run()


def _compiled(backend, run):
    """The UNet compiled; the first (compiling) call is not timed by the caller's second run."""
    unet = backend.pipe.unet
    backend.pipe.unet = torch.compile(unet)
    try:
        run()  # compiles
        t0 = time.perf_counter()
        run()
        print(f"  torch.compile: second call {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    finally:
        backend.pipe.unet = unet


def tiny_models(device: torch.device, dtype: torch.dtype, family: str):
    """The tiny test models, saved and loaded back through the loaders a user's model takes."""
    from dpodiff.models import load_pipeline
    from dpodiff.objectives.clip_loss import ClipScorer
    from dpodiff.testing import build_tiny_flux, build_tiny_pipeline, build_tiny_scorer, build_tiny_sd3, build_tiny_sdxl

    import diffusers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    folder = Path(tempfile.mkdtemp(prefix="dpodiff-gpu-bench-"))
    build = {"sd15": build_tiny_pipeline, "sdxl": build_tiny_sdxl, "sd35m": build_tiny_sd3, "flux": build_tiny_flux}[family]
    backend = load_pipeline(str(build(folder / family)), device, dtype)
    scorer = ClipScorer.from_pretrained(str(build_tiny_scorer(folder / "scorer")), device, dtype)
    return backend, scorer


def print_tables(title: str, rows: list, speed: list) -> None:
    def fmt(v, digits=3):
        return "-" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else str(v))

    print(f"\n### {title}\n")
    print("| measurement | seconds | peak GPU MiB | what |")
    print("|---|---|---|---|")
    for label, seconds, peak, what in rows:
        print(f"| {label} | {fmt(seconds)} | {fmt(peak, 0)} | {what} |")
    reference = speed[0][1]
    print("\n| pattern | images/s | x reference | peak GPU MiB |")
    print("|---|---|---|---|")
    for label, ips, peak in speed:
        print(f"| {label} | {ips:.3f} | {ips / reference:.2f} | {fmt(peak, 0)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test models on the CPU, small settings (CI)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default: float16 on CUDA, float32 on the CPU")
    parser.add_argument("--models", default="sd15,sdxl", help=f"comma list of {', '.join(PIPELINES)}")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's native size)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default 50; 10 with --tiny)")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--budget", type=int, default=None, help="hybrid's candidates (default 40, the paper's; 8 with --tiny)")
    parser.add_argument("--iterations", type=int, default=None, help="hybrid's GPO iterations (default 20; 4 with --tiny)")
    parser.add_argument("--batch", type=int, default=None, help="images per call of the batched patterns (default: dpodiff's GPU default)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: dpodiff's default)")
    parser.add_argument("--no-classic-attention", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time the UNet under torch.compile")
    args = parser.parse_args()
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    args.dtype = args.dtype or ("float16" if device.type == "cuda" else "float32")
    args.steps = args.steps or (10 if args.tiny else 50)
    args.budget = args.budget or (8 if args.tiny else 40)
    args.iterations = args.iterations or (4 if args.tiny else 20)
    threads = use_threads(args.threads)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    print(f"device: {card}; dtype {args.dtype}; {args.steps} steps, guidance {args.guidance}; torch {torch.__version__}")
    for family in [m.strip() for m in args.models.split(",") if m.strip()]:
        if family not in PIPELINES:
            parser.error(f"--models: {family!r} is not one of {', '.join(PIPELINES)}")
        dtype = DTYPES[args.dtype]
        backend, scorer = tiny_models(device, dtype, family) if args.tiny else build(family, device, dtype)
        size = args.size or backend.native_size
        rows, speed = bench_model(family, backend, scorer, args)
        print_tables(f"{'tiny ' if args.tiny else ''}{family} ({'tiny test model' if args.tiny else 'real architecture, random weights'}), "
                     f"{size}x{size} px, {args.dtype}", rows, speed)
        del backend, scorer
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
