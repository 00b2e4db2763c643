"""Command-line options shared by several commands (typer Annotated types), so each is defined once."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from dpodiff.defaults import DEFAULT_HUB_SCORER
from dpodiff.registry import FAMILIES, OPTIMIZERS, SCHEDULERS, SCORERS, SPACE_SOURCES
from dpodiff.spaces.llm import DEFAULT_RETRIES, DEFAULT_TIMEOUT

Model = Annotated[Optional[str], typer.Option(help=(
    f"Diffusers pipeline ({', '.join(e.help for e in FAMILIES.values())}, detected from model_index.json): hub id or local folder. "
    "Default: the shipped shapes-world model."))]
Scorer = Annotated[Optional[str], typer.Option(help=(
    "What scores the images (lower loss is better). A CLIPModel hub id or local folder: the paper's CLIP distance "
    f"(a name containing 'pickscore' loads PickScore). Or KIND:PATH, KIND one of {', '.join(SCORERS)}: "
    f"{', '.join(e.example for e in SCORERS.values() if e.name != 'clip')} "
    "(the aesthetic head with openai/clip-vit-large-patch14, or aesthetic:FOLDER: a CLIPModel and one *.pth head). "
    f"Reward models' loss is minus the reward. Default: the shapes-world scorer with the shapes model, else {DEFAULT_HUB_SCORER}."))]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Dtype = Annotated[str, typer.Option(help="auto (float16 on CUDA, float32 on CPU), float16, bfloat16 or float32.")]
Steps = Annotated[Optional[int], typer.Option(help="Sampling steps (1 to 1000). Default: the model's recommendation (its dpodiff.json; the shapes world: 25), else 50.", show_default=False)]
Guidance = Annotated[Optional[float], typer.Option(help="Classifier-free guidance scale; for Flux the embedded (distilled) guidance. Default: the model's recommendation (the shapes world: 3), else 7.5.", show_default=False)]
TrueCfg = Annotated[Optional[float], typer.Option("--true-cfg", help="Flux: the true classifier-free guidance scale through which a negative prompt steers (diffusers' true_cfg_scale; 1: off). Default: 4. Other families: ignored.", show_default=False)]
NegativeMode = Annotated[str, typer.Option(help=(
    "How the negative prompt steers sampling: cfg (SD's: it replaces the empty prompt in classifier-free guidance) or perp "
    "(Perp-Neg: guidance from the empty prompt, minus only the part of the negative's direction perpendicular to the prompt's, "
    "so a negative that shares the prompt's content does not cancel it; 1.5x the UNet calls)."))]
Seeds = Annotated[Optional[str], typer.Option(help="N (seeds 0..N-1) or a comma list, e.g. 0,3,7. The loss is averaged over the seeds. Default: 2.")]
Seed = Annotated[Optional[list[int]], typer.Option("--seed", help="A particular seed; repeat it for several (--seed 7 --seed 1234). Instead of --seeds.")]
Resume = Annotated[bool, typer.Option("--resume", help=(
    "Continue the run that stopped in --out (killed, interrupted, or a failed save) from its journal, evaluations.jsonl: "
    "candidates scored there are not scored again. The model, scorer and generation settings must be the same."))]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out (its result.json, space.json and images).")]
Size = Annotated[Optional[int], typer.Option(help="Image side in pixels. Default: the model's native size.")]
Out = Annotated[Path, typer.Option(help="Folder for result.json and the images.")]
BatchSize = Annotated[Optional[int], typer.Option(help="Images per pipeline call. Default: whole candidates, up to 16 images at 512x512 "
                                                   "(4 at 1024x1024), fewer where the GPU's free memory holds fewer.")]
MaxMemory = Annotated[Optional[float], typer.Option(help="GiB of GPU memory the run may hold, weights included (e.g. 20 on a 24 GB card). "
                                                    "Default: what is free. An out-of-memory error halves the batch and goes on.")]
SpaceFile = Annotated[Optional[Path], typer.Option("--space", help="Search space JSON (ours or the DPO-Diff reference format). Default: built from the prompt.")]
SpaceSource = Annotated[str, typer.Option(help=f"Where a space built from the prompt takes its words: {SPACE_SOURCES.listing()}.")]
PerWord = Annotated[int, typer.Option(help="Choices per word in a space built from the prompt.")]
SpaceKind = Annotated[str, typer.Option(help="improve: the negative slots of a space built from the prompt: antonym (opposites of its words), library (the negative-prompt library) or both.")]
LlmUrl = Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint for --space-source llm.")]
LlmModel = Annotated[Optional[str], typer.Option(help="Model name for --space-source llm.")]
LlmKeyFile = Annotated[Optional[Path], typer.Option(help="File whose first non-empty line is the API key for --space-source llm (default: $OPENAI_API_KEY).")]
LlmTimeout = Annotated[Optional[float], typer.Option(help=f"Seconds to wait for each --space-source llm request (default {DEFAULT_TIMEOUT:g}); raise it for a slow model.")]
LlmRetries = Annotated[Optional[int], typer.Option(help=f"Retries of a failed --space-source llm request (default {DEFAULT_RETRIES}).")]
Algo = Annotated[str, typer.Option(help=f"The optimiser: {OPTIMIZERS.listing()}.")]
Budget = Annotated[int, typer.Option(help="Candidates to score, the original included.")]
SearchSeed = Annotated[int, typer.Option(help="Seed of the optimiser's random choices.")]
Scheduler = Annotated[Optional[str], typer.Option(help=f"Sampler: {', '.join(SCHEDULERS)}. Default: the model's recommendation, else its own.")]
Vae = Annotated[Optional[str], typer.Option(help="A VAE (diffusers AutoencoderKL: hub id or folder) instead of the model's own, e.g. madebyollin/sdxl-vae-fp16-fix, which decodes in float16 without overflowing.")]
Sampling = Annotated[str, typer.Option(help="How random search and EPO draw fresh candidates: sparse (a few slots changed, the rest left at their default: empty negative slots, the prompt's own words) or uniform (every slot drawn uniformly, the paper's).")]
Threads = Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch. Default: the physical cores not busy with other processes (so a shared machine is never oversubscribed).")]
Validate = Annotated[str, typer.Option(help=(
    "K,V: after the search, render the original and the K best candidates on V fresh seeds; a candidate replaces the original only "
    "if it beats it on those seeds beyond noise (one-sided paired t-test at 5%/K each); among those, the best mean improvement on "
    "those seeds wins. K,V1,V2: adaptive, V1 seeds first, then up to V2 for the candidates that still look better."))]
Protocol = Annotated[str, typer.Option(help=(
    "dpodiff (the default) or paper: the DPO-Diff reference's choices, uniform sampling, the plain arg-min (no validation), "
    "the original prompt outside the budget, GPO's 32 samples and the hybrid led by GPO's argmax (docs/method.md: where dpodiff departs from the paper)."))]
SelectScorer = Annotated[Optional[str], typer.Option(help=(
    "A second scorer (a --scorer spec) that re-ranks the validated shortlist: the challenger is the best average of its "
    "ranks under both scorers, a held-out judge against over-optimising the search's own."))]
Decompose = Annotated[bool, typer.Option("--decompose", help=(
    "Score images against the whole prompt and each of its noun phrases, averaged (OPT2I's decomposed CLIP score): "
    "for prompts with several objects, whose attributes CLIP mixes up."))]
NoValidate = Annotated[bool, typer.Option("--no-validate", help="Choose the plain arg-min of the search seeds, as the paper does (no fresh seeds).")]
