"""Retrain the shapes world from scratch: ``python -m dpodiff.shapes.train``.

Stages (each resumable from its checkpoint in ``--workdir``; ``--stage`` runs
a subset): ``clip`` (the conditioning CLIP, whose text tower the UNet reads),
``scorer`` (a second CLIP, different seed and size, trained with near-miss
hard negatives, used only for scoring), ``vae``, ``unet``, ``export`` (float16
safetensors into the package) and ``eval`` (measures and writes the model
card). Every stage has a fixed seed; data is rendered on the fly from the
grammar with a seeded generator, so the run is reproducible on CPU.

``--init-from WEIGHTS`` continues from a released shapes world (a folder
holding ``pipeline/`` and ``scorer/``) instead of starting from scratch: the
CLIPs and the UNet start from its weights (text position tables grown to this
release's window), its VAE is kept, and the rest of the recipe is the same.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import PIPELINE_DIR, SCORER_DIR, WEIGHTS_DIR
from .checkpoint import CHECKPOINT_MINUTES
from .clip import CLIP_MEAN, CLIP_STD, ClipSpec, image_features, load_grown, make_clip, text_features  # noqa: F401  (re-exported)
from .data import (EOS, TOKEN_LENGTH, Dataset, build_dataset, dataset_path, images_to_tensor, load_dataset, tokenize,  # noqa: F401
                   tokenizer, trim)
from .grammar import CAPTION_MIXES  # noqa: F401  (re-exported)
from .loop import Training, finished, lr_at, progress, write_steps
from .render import IMAGE_SIZE

COND_CLIP = ClipSpec(seed=1, hidden=128, layers=4, projection=128, steps=400, batch=128, hard_negatives=1)
SCORER_CLIP = ClipSpec(seed=2, hidden=128, layers=4, projection=96, steps=600, batch=128, hard_negatives=2)
# Second phase of the scorer, from the first phase's weights (lower peak learning rate).
SCORER_CLIP_MORE = ClipSpec(seed=2, hidden=128, layers=4, projection=96, steps=700, batch=128,
                            hard_negatives=2, lr=2.5e-4)
# The critic: the scorer continued with critic.py's recipe (all wordings, near misses, roughened images).
CRITIC_CLIP = ClipSpec(seed=2, hidden=128, layers=4, projection=96, steps=1500, batch=128, hard_negatives=4,
                       lr=2.5e-4)
# Its second phase, from the first's weights: an image of a near miss joins each caption's candidates.
CRITIC_CLIP_MORE = replace(CRITIC_CLIP, steps=800, miss_images=True)
VAE_STEPS, VAE_DECODER_STEPS, VAE_BATCH = 500, 200, 32
UNET_STEPS, UNET_BATCH, UNET_LR, EMA_DECAY = 8000, 64, 5e-4, 0.998
FINETUNE_LR = 3e-4  # UNet learning rate when continuing from a released model (--init-from)
INIT_TEXT_LR_SCALE = 0.2  # a released text tower moves slowly, so the UNet that reads it stays valid
DECODER_STEPS, DECODER_CONSTANT, DECODER_BATCH = 3000, 2000, 64
MIN_SNR_GAMMA = 5.0  # Hang et al. 2023: min-SNR loss weighting converges ~3x faster


def train_clip(spec: ClipSpec, data: Dataset, out: Path, name: str,
               init_from: Path | None = None, max_minutes: float | None = None,
               init_text: Path | None = None, run: Training | None = None) -> None:
    """Contrastive training; each image's near-miss captions join the text batch.

    ``init_from`` continues from a saved CLIP (a second phase with its own
    warm-up and cosine schedule); ``init_text`` starts the text tower from a
    released text encoder, at a lower learning rate; ``max_minutes`` caps it.
    """
    run = run or Training()
    if finished(out, name):
        return
    model = make_clip(spec)
    if init_from:
        load_grown(model, init_from)
    if init_text:
        load_grown(model, init_text, prefix="text_model.")
    model.to(run.device)
    text_params = list(model.text_model.parameters())
    text_ids = {id(p) for p in text_params}
    groups = [{"params": [p for p in model.parameters() if id(p) not in text_ids], "scale": 1.0},
              {"params": text_params, "scale": INIT_TEXT_LR_SCALE if init_text else 1.0}]
    opt = torch.optim.AdamW(groups, lr=spec.lr, weight_decay=0.01)
    state = run.state(out, {"model": model}, opt, np.random.default_rng(1000 + spec.seed))
    model.train()
    for step in state.steps(spec.steps, name, max_minutes):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec.steps, spec.lr) * g["scale"]
        images, ids, neg = run.on_device(data.sample(state.rng, spec.batch))
        ids = trim(torch.cat([ids, neg[:, : spec.hard_negatives].reshape(-1, ids.shape[1])]))
        img = image_features(model, images)
        txt = text_features(model, ids)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        target = torch.arange(spec.batch, device=run.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : spec.batch].T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == spec.steps - 1:
            acc = (logits.argmax(1) == target).float().mean().item()
            tqdm.write(f"[{name}] step {step} loss {loss.item():.3f} in-batch acc {acc:.3f}")
    model.to("cpu").save_pretrained(out)
    write_steps(out, name, state, spec.steps)


# ---------------------------------------------------------------- VAE

def make_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(3)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=32, sample_size=IMAGE_SIZE,
    )


def train_vae(data: Dataset, out: Path, run: Training | None = None) -> None:
    """Reconstruction + tiny KL, then the decoder alone on frozen latents (sharper edges).

    Short (minutes): one checkpoint per phase boundary is not worth its code, so a stopped VAE starts over."""
    run = run or Training()
    if (out / "config.json").exists():
        print(f"[vae] found {out}, skipping")
        return
    vae = make_vae().to(run.device)
    rng = np.random.default_rng(1003)
    total = VAE_STEPS + VAE_DECODER_STEPS
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    bar = progress(total, "vae")
    for step in range(total):
        decoder_only = step >= VAE_STEPS
        if step == VAE_STEPS:
            for p in vae.encoder.parameters():
                p.requires_grad_(False)
            for p in vae.quant_conv.parameters():
                p.requires_grad_(False)
            opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=5e-4)
        phase_step = step - VAE_STEPS if decoder_only else step
        phase_total = VAE_DECODER_STEPS if decoder_only else VAE_STEPS
        for g in opt.param_groups:
            g["lr"] = lr_at(phase_step, phase_total, 5e-4 if decoder_only else 1e-3)
        x, _, _ = run.on_device(data.sample(rng, VAE_BATCH))
        if decoder_only:
            with torch.no_grad():
                z = vae.encode(x).latent_dist.sample()
            kl = torch.zeros(())
        else:
            post = vae.encode(x).latent_dist
            z = post.sample()
            kl = post.kl().mean() / x[0].numel()
        recon = vae.decode(z).sample
        mse = F.mse_loss(recon, x)
        loss = mse + F.l1_loss(recon, x) * 0.1 + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update()
        if step % 100 == 0 or step == total - 1:
            bar.write(f"[vae] step {step} mse {mse.item() / 4:.5f} (on [0,1] scale) kl {kl.item():.4f}")
    bar.close()
    # SD convention: scale latents to unit variance for the UNet.
    with torch.no_grad():
        x, _, _ = run.on_device(data.sample(np.random.default_rng(7), 1024))
        z = vae.encode(x).latent_dist.sample()
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    for p in vae.parameters():
        p.requires_grad_(True)
    vae.to("cpu").save_pretrained(out)


def train_decoder(data: Dataset, workdir: Path, steps: int, max_minutes: float | None, run: Training | None = None) -> None:
    """More decoder-only training on the frozen encoder's latents (resumable).

    The latents (and so the UNet's training targets and the scaling factor)
    do not change, so this can run beside the UNet stage and its result is
    swapped in at export.
    """
    from diffusers import AutoencoderKL

    run = run or Training()
    out = workdir / "vae_decoder"
    if finished(out, "decoder"):
        return
    vae = AutoencoderKL.from_pretrained(workdir / "vae").to(run.device)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4)
    state = run.state(out, {"vae": vae}, opt, np.random.default_rng(1005), torch.Generator().manual_seed(1005))
    for step in state.steps(steps, "decoder", max_minutes):
        # Constant, then a linear decay over the steps past the first DECODER_CONSTANT.
        decay = max(0.0, (step - DECODER_CONSTANT) / max(1, steps - DECODER_CONSTANT))
        for g in opt.param_groups:
            g["lr"] = 3e-4 * min(1.0, (step + 1) / 50) * (1 - 0.9 * decay)
        x, _, _ = run.on_device(data.sample(state.rng, DECODER_BATCH))
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * run.noise(posterior.mean.shape, state.generator)
        recon = vae.decode(z).sample
        mse = F.mse_loss(recon, x)
        loss = mse + 0.1 * F.l1_loss(recon, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            tqdm.write(f"[decoder] step {step} mse {mse.item() / 4:.5f} (on [0,1] scale)")
    vae.requires_grad_(True)
    vae.to("cpu").save_pretrained(out)
    write_steps(out, "decoder", state, steps, batch=DECODER_BATCH)


# ---------------------------------------------------------------- UNet

def make_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(4)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128, 128),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=128, attention_head_dim=4, norm_num_groups=32,
    )


def noise_scheduler_config() -> dict:
    """Stable Diffusion 1.x's training schedule."""
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                beta_schedule="scaled_linear", prediction_type="epsilon")


def copy_released(init: Path, workdir: Path) -> None:
    """Keep a released model's VAE (its latents are what its UNet was trained on), and its text encoder
    too when the workdir trains no conditioning CLIP (the UNet then learns to read the released one)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel

    if not (workdir / "vae" / "config.json").exists():
        AutoencoderKL.from_pretrained(init / "pipeline" / "vae", torch_dtype=torch.float32).save_pretrained(workdir / "vae")
    if not (text_encoder_dir(workdir) / "config.json").exists():
        CLIPTextModel.from_pretrained(init / "pipeline" / "text_encoder", torch_dtype=torch.float32).save_pretrained(
            workdir / "text_encoder")


def train_unet(data: Dataset, workdir: Path, max_minutes: float | None, steps: int | None = None,
               init: Path | None = None, run: Training | None = None, captions: str = "varied") -> None:
    """Epsilon-prediction DDPM loss on VAE latents, text from the frozen conditioning CLIP.

    Constant learning rate after warm-up with an EMA of the weights, so a run
    stopped early by ``--max-minutes`` still yields a usable model (its EMA is
    saved, and the number of steps reached recorded in ``unet_steps.json``);
    ``--resume`` continues it exactly. ``init`` starts from a released model's
    UNet, at FINETUNE_LR. ``captions`` names the data set's mix (its caption drop-out is the UNet's).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    run = run or Training()
    out = workdir / "unet"
    total = steps or UNET_STEPS
    if finished(out, "unet"):
        return
    vae = AutoencoderKL.from_pretrained(workdir / "vae").eval().to(run.device)
    text = load_text_encoder(text_encoder_dir(workdir)).eval().to(run.device)
    assert isinstance(text, CLIPTextModel)
    empty = tokenize(tokenizer(), [""]).to(run.device)  # caption dropout, for classifier-free guidance
    sched = DDPMScheduler(**noise_scheduler_config())
    alphas_cumprod = sched.alphas_cumprod.to(run.device)  # once, not per step
    unet = make_unet()
    if init:
        unet.load_state_dict(UNet2DConditionModel.from_pretrained(init / "pipeline" / "unet", torch_dtype=torch.float32).state_dict())
    lr = FINETUNE_LR if init else UNET_LR
    ema = make_unet()
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    unet.to(run.device), ema.to(run.device)
    opt = torch.optim.AdamW(unet.parameters(), lr=UNET_LR, weight_decay=0.01)
    state = run.state(out, {"unet": unet, "ema": ema}, opt, np.random.default_rng(1004), torch.Generator().manual_seed(1004))
    for step in state.steps(total, "unet", max_minutes):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 200)
        images, ids, _ = run.on_device(data.sample(state.rng, UNET_BATCH))
        drop = torch.from_numpy(state.rng.random(UNET_BATCH) < CAPTION_MIXES[captions].dropout).to(run.device)
        ids = torch.where(drop[:, None], empty, ids)
        loss = _denoising_loss(unet, vae, text, sched, alphas_cumprod, images, ids, run, state.generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        if step % 100 == 0:
            tqdm.write(f"[unet] step {step} loss {loss.item():.4f}, {state.minutes:.1f} min before this process")
    ema.to("cpu").save_pretrained(out)
    write_steps(out, "unet", state, total, batch=UNET_BATCH, init_from=str(init) if init else None, lr=lr,
                captions=captions)


def _denoising_loss(unet, vae, text, sched, alphas_cumprod: torch.Tensor, images: torch.Tensor, ids: torch.Tensor, run: Training,
                    generator: torch.Generator) -> torch.Tensor:
    """The UNet's epsilon-prediction loss on a batch, min-SNR weighted: latents drawn from the VAE's posterior, a
    noise level per image (every draw from `generator`, in the same order, so a resumed run repeats them)."""
    with torch.no_grad():
        posterior = vae.encode(images).latent_dist
        latents = posterior.mean + posterior.std * run.noise(posterior.mean.shape, generator)
        latents = latents * vae.config.scaling_factor
        states = text(ids)[0]
    noise = run.noise(latents.shape, generator)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(images),), generator=generator).to(run.device)
    noisy = sched.add_noise(latents, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=states).sample
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    weight = snr.clamp(max=MIN_SNR_GAMMA) / snr
    return (F.mse_loss(pred, noise, reduction="none").mean((1, 2, 3)) * weight).mean()


def text_encoder_dir(workdir: Path) -> Path:
    """Where the conditioning text tower is: the workdir's CLIP, else the released text encoder it kept."""
    return workdir / "clip" if (workdir / "clip" / "config.json").exists() else workdir / "text_encoder"


def load_text_encoder(clip_dir: Path):
    """The text tower of a saved CLIPModel (or a saved CLIPTextModel) as a standalone CLIPTextModel."""
    from transformers import CLIPModel, CLIPTextModel

    if json.loads((clip_dir / "config.json").read_text()).get("model_type") == "clip_text_model":
        return CLIPTextModel.from_pretrained(clip_dir, torch_dtype=torch.float32)
    clip = CLIPModel.from_pretrained(clip_dir)
    if isinstance(clip.text_model, CLIPTextModel):  # transformers >= 5
        return clip.text_model
    text = CLIPTextModel(clip.config.text_config)
    text.text_model.load_state_dict(clip.text_model.state_dict())
    return text


# ---------------------------------------------------------------- export

def _load_as_float32(config: Path) -> None:
    """Weights ship in float16 to stay small, but transformers would load them in the dtype the config
    names, beside diffusers' float32 UNet: the config says float32, as a plain from_pretrained needs."""
    data = json.loads(config.read_text())
    data["dtype"] = "float32"
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def export(workdir: Path) -> None:
    """Float16 safetensors into the package: the SD pipeline (when the workdir trained one) and the scorer.

    A workdir that trained only a critic replaces the scorer alone; the generator stays as released.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = tokenizer()
    if (workdir / "unet" / "config.json").exists():
        vae_dir = workdir / "vae_decoder" if (workdir / "vae_decoder" / "config.json").exists() else workdir / "vae"
        pipe = StableDiffusionPipeline(
            vae=AutoencoderKL.from_pretrained(vae_dir),
            text_encoder=load_text_encoder(text_encoder_dir(workdir)),
            tokenizer=tok,
            unet=UNet2DConditionModel.from_pretrained(workdir / "unet"),
            scheduler=DDIMScheduler(**noise_scheduler_config(), clip_sample=False,
                                    set_alpha_to_one=False, steps_offset=1),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.to(torch.float16)
        pipe.save_pretrained(PIPELINE_DIR, safe_serialization=True)
        _load_as_float32(PIPELINE_DIR / "text_encoder" / "config.json")
        marker = {"judge": "dpodiff.shapes.judge:judge", "reader": "dpodiff.shapes.grammar:meaning",
                  "wordings": "dpodiff.shapes.grammar:wordings"}
        (PIPELINE_DIR / "dpodiff_judge.json").write_text(json.dumps(marker) + "\n")
        print(f"[export] wrote {PIPELINE_DIR}")

    scorer_dir = next((workdir / name for name in ("critic_more", "critic", "scorer_more", "scorer")
                       if (workdir / name / "config.json").exists()), None)
    if scorer_dir is None:  # a generator-only release keeps the shipped scorer
        _copy_training_logs(workdir)
        return
    scorer = CLIPModel.from_pretrained(scorer_dir).to(torch.float16)
    scorer.save_pretrained(SCORER_DIR, safe_serialization=True)
    _load_as_float32(SCORER_DIR / "config.json")
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            do_resize=True, size={"shortest_edge": IMAGE_SIZE}, resample=3,
            do_center_crop=True, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
            image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True),
        tokenizer=tok,
    )
    processor.save_pretrained(SCORER_DIR)
    # Also the classic separate files, readable by older transformers and by hand.
    processor.image_processor.save_pretrained(SCORER_DIR)
    tok.save_pretrained(SCORER_DIR)
    _copy_training_logs(workdir)
    print(f"[export] wrote {SCORER_DIR} from {scorer_dir.name}")


def _copy_training_logs(workdir: Path) -> None:
    for name in ("unet_steps.json", "critic_steps.json", "critic_more_steps.json"):
        if (workdir / name).exists():
            (WEIGHTS_DIR / ("training.json" if name == "unet_steps.json" else name)).write_text((workdir / name).read_text())


def _limit(args) -> float | None:
    """Minutes a time-capped stage may run: --max-minutes and/or until --stop-at."""
    limit = args.max_minutes
    if args.stop_at:
        now = datetime.now(timezone.utc)
        h, m = map(int, args.stop_at.split(":"))
        until = (now.replace(hour=h, minute=m, second=0) - now).total_seconds() / 60
        limit = min(limit or until, until)
    return limit


OUTPUTS = {"decoder": "vae_decoder"}  # a stage's folder in the workdir, where it is not the stage's name
STAGES = ("clip", "scorer", "scorer_more", "critic", "critic_more", "vae", "unet", "decoder", "export", "eval")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="append", choices=STAGES,
                        help="run only these stages (repeatable); default: all in order")
    parser.add_argument("--workdir", type=Path, default=Path("runs/shapes"),
                        help="fp32 checkpoints per stage (delete a stage's folder to retrain it)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop UNet, decoder, scorer_more and critic training (both phases) after this long (weights are still saved)")
    parser.add_argument("--stop-at", default=None,
                        help="UTC wall-clock time HH:MM at which UNet, decoder, scorer_more and critic stop early (safety net)")
    parser.add_argument("--decoder-steps", type=int, default=None,
                        help=f"extra decoder-only VAE steps (default {DECODER_STEPS})")
    parser.add_argument("--captions", choices=tuple(CAPTION_MIXES), default="varied",
                        help="training captions (grammar.CAPTION_MIXES): SD's styles (sentences, tag lists, single tags, "
                             "flaw tags alone, partial captions; release 3), the same with most flaws and copies named, "
                             "often alone (named), or sentences only (releases 1 and 2)")
    parser.add_argument("--unet-steps", type=int, default=None, help=f"UNet steps (default {UNET_STEPS})")
    parser.add_argument("--resume", action="store_true",
                        help="continue the stages a time limit or a crash stopped, from their checkpoints (WORKDIR/STAGE.ckpt)")
    parser.add_argument("--checkpoint-minutes", type=float, default=CHECKPOINT_MINUTES,
                        help="save every training stage's full state this often (and when its time limit ends it)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (data and noise are drawn on the CPU either way)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads per process; use 1 when other processes share the cores "
                             "(OpenMP's spinning threads slow down many-fold under contention)")
    parser.add_argument("--eval-samples", type=int, default=100, help="generated images per prompt type")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="continue from a released shapes world (a copy of dpodiff/shapes/weights): "
                             "CLIPs and UNet start from it, its VAE is kept (and its text encoder, when no clip stage runs); "
                             "scorer_more and decoder are skipped")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this machine has no CUDA GPU that torch can use; leave it out to train on the CPU")
    if args.checkpoint_minutes <= 0:
        parser.error(f"--checkpoint-minutes {args.checkpoint_minutes}: give a positive number of minutes (default {CHECKPOINT_MINUTES:g})")
    run = Training(args.device, args.resume, args.checkpoint_minutes)
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    stages = args.stage or [s for s in STAGES if not (args.init_from and s in ("scorer_more", "decoder"))]
    init = args.init_from
    if init and not all((init / part).is_dir() for part in ("pipeline/text_encoder", "pipeline/unet", "pipeline/vae", "scorer")):
        parser.error(f"--init-from {init}: not a released shapes world (it needs pipeline/text_encoder, pipeline/unet, "
                     "pipeline/vae and scorer/); copy src/dpodiff/shapes/weights there first")
    stopped = [path for path in (args.workdir / f"{OUTPUTS.get(s, s)}.ckpt" for s in stages) if path.exists()]
    if stopped and not args.resume:  # before the data set is built: say it at once
        parser.error(f"{stopped[0]} holds an unfinished stage: pass --resume to continue it, or delete the file to start it over")
    data = None
    if {"clip", "scorer", "scorer_more", "vae", "unet", "decoder"} & set(stages):
        s0 = time.time()
        data = load_dataset(args.workdir, args.captions)
        print(f"[dataset] {len(data)} pairs ready in {(time.time() - s0) / 60:.1f} min")
    run_stages(args, stages, data, init, run)


def run_stages(args, stages: list[str], data, init: Path | None, run: Training) -> None:
    t0 = time.time()
    timings = {}
    for stage in STAGES:
        if stage not in stages:
            continue
        s0 = time.time()
        if stage == "clip":
            train_clip(COND_CLIP, data, args.workdir / "clip", "clip",
                       init_text=init / "pipeline" / "text_encoder" if init else None, run=run)
        elif stage == "scorer":
            train_clip(SCORER_CLIP_MORE if init else SCORER_CLIP, data, args.workdir / "scorer", "scorer",
                       init_from=init / "scorer" if init else None, run=run)
        elif stage == "scorer_more":
            train_clip(SCORER_CLIP_MORE, data, args.workdir / "scorer_more", "scorer_more",
                       init_from=args.workdir / "scorer", max_minutes=_limit(args), run=run)
        elif stage == "critic":
            from .critic import train_critic

            first = args.workdir / "scorer_more"
            train_critic(CRITIC_CLIP, args.workdir / "critic",
                         init / "scorer" if init else first if (first / "config.json").exists() else args.workdir / "scorer",
                         init / "pipeline" / "vae" if init else args.workdir / "vae", _limit(args), run)
        elif stage == "critic_more":
            from .critic import train_critic

            train_critic(CRITIC_CLIP_MORE, args.workdir / "critic_more", args.workdir / "critic",
                         init / "pipeline" / "vae" if init else args.workdir / "vae", _limit(args), run)
        elif stage == "vae":
            if init:
                copy_released(init, args.workdir)
            else:
                train_vae(data, args.workdir / "vae", run)
        elif stage == "unet":
            train_unet(data, args.workdir, _limit(args), args.unet_steps, init, run, args.captions)
        elif stage == "decoder":
            train_decoder(data, args.workdir, args.decoder_steps or DECODER_STEPS, _limit(args), run)
        elif stage == "export":
            export(args.workdir)
        elif stage == "eval":
            from .evaluate import evaluate

            evaluate(args.workdir, per_type=args.eval_samples)
        timings[stage] = (time.time() - s0) / 60
        print(f"[{stage}] done in {timings[stage]:.1f} min")
        times_file = args.workdir / "stage_minutes.json"
        old = json.loads(times_file.read_text()) if times_file.exists() else {}
        old.update({k: round(v, 2) for k, v in timings.items() if v > 0.05})
        times_file.write_text(json.dumps(old, indent=1))
    print(f"all done in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
