"""The model card (weights/README.md), written from measured metrics."""

from __future__ import annotations

import json

from . import WEIGHTS_DIR
from .critic_eval import critic_tables
from .grammar import CAPTION_MIXES, DEFECTS, P_ONE_TAG, P_TAGS, SYNONYMS, training_frequencies


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _file_sizes() -> list[str]:
    rows = []
    for path in sorted(WEIGHTS_DIR.rglob("*.safetensors")):
        rows.append(f"| `{path.relative_to(WEIGHTS_DIR)}` | {path.stat().st_size / 2**20:.1f} MiB |")
    return rows


def _critic_training() -> list[str]:
    """How the shipped scorer was retrained as a critic (release 2.1), with the training logs."""
    phases = [(name, json.loads((WEIGHTS_DIR / f"{name}_steps.json").read_text()))
              for name in ("critic", "critic_more") if (WEIGHTS_DIR / f"{name}_steps.json").exists()]
    if not phases:
        return []
    lines = ["Release 2.1 retrained the scorer alone, as a critic (the generator is release 2's), on the",
             "same idle 2-core CPU, 2 threads, in two phases: the first with near-miss captions, the second",
             "adding an image of a near miss to each caption's candidates:", "",
             "```",
             "python -m dpodiff.shapes.train --init-from RELEASE_2_WEIGHTS --workdir runs/critic \\",
             "    --stage critic --max-minutes 52 --threads 2",
             "python -m dpodiff.shapes.train --init-from RELEASE_2_WEIGHTS --workdir runs/critic \\",
             "    --stage critic_more --stage export --max-minutes 32 --threads 2",
             "python benchmarks/critic.py --baseline RELEASE_2_WEIGHTS/scorer --card",
             "```", ""]
    for name, record in phases:
        lines += [f"`{name}`: {record['steps']} steps of batch {record['batch']} (planned {record['planned']}),",
                  f"{record['negatives']} near-miss captions per image"
                  + (", one near-miss image per caption" if record.get("miss_images") else "")
                  + ". Held-out right caption among itself + 5 near misses:", "",
                  "| step | minutes | loss | two shapes (and) | two shapes (relation) |", "|---|---|---|---|---|"]
        lines += [f"| {r['step']} | {r['minutes']} | {r['loss']} | {_pct(r['misses_two'])} | {_pct(r['misses_relation'])} |"
                  for r in record["log"]]
        lines.append("")
    return lines


def write_card(m: dict) -> str:
    jg = m["judge_ground_truth"]
    sr = m["scorer_retrieval"]
    gen = m["generation"]
    t = m["sampling_time"]
    training = m.get("training", {})
    steps = training.get("unet_steps", {})
    minutes = training.get("stage_minutes", {})
    mix = CAPTION_MIXES[steps.get("captions", "varied")]  # release 3 did not record its mix
    alone = 'the flaw or the count ("blurry", "two")' if mix.count_alone else 'the flaw ("blurry")'
    lines = [
        "# dpodiff shapes world: a miniature Stable Diffusion and its scorer CLIP",
        "",
        "Trained on this repository's synthetic shapes (32x32 RGB images of 1-3 coloured",
        "circles/squares/triangles on a plain background, with captions from a small grammar;",
        "see `dpodiff/shapes/grammar.py`). For tests and demos of prompt optimisation on a",
        "CPU; it knows nothing but this world.",
        "",
        f"Like web photographs, {_pct(mix.defect)} of the training images have a flaw",
        f"({', '.join(DEFECTS)}) and {_pct(mix.copies)} of the single-shape ones show two or",
        f"three copies of the object; the caption names a flaw or the copies {_pct(mix.named)}",
        "of the time (\"a red circle, blurry\", \"two red circles\"). So the model makes such",
        "mistakes unasked now and then, as real SD does.",
        "",
        "Like web alt-text, the captions are not all sentences (release 3 on): "
        f"{_pct(P_TAGS)} are tag lists in any order",
        "(\"yellow, circle, large, white background\"; two objects keep their own tags together),",
        f"{_pct(P_ONE_TAG)} one tag alone (\"yellow\", \"circle\", \"two\"), {_pct(mix.flaws_alone)} of the captions",
        f"that name a flaw say only {alone}, and {_pct(mix.partial)} of two-shape captions",
        "name one of the shapes. A negative prompt is then text the model has seen; whether it",
        "pushes away what it names is measured below.",
        "",
        "- `pipeline/`: diffusers `StableDiffusionPipeline` (AutoencoderKL 32x32x3 -> 8x8x4,",
        "  UNet2DConditionModel on 8x8 latents with cross-attention to the text encoder,",
        "  DDIM scheduler, the real CLIP BPE tokenizer with SD's 77 positions). The text encoder",
        "  is the text tower of a CLIP trained contrastively here (seed 1).",
        "- `scorer/`: a second, separately trained transformers `CLIPModel` (seed 2,",
        "  different projection size) with its `CLIPProcessor`: use it to score images, as SD 1.x",
        "  is scored with a CLIP other than its own text encoder. Images: 32x32, mean = std = 0.5.",
        "  Like real CLIP, it is a critic that knows more than the generator: it was trained on",
        "  every wording at full weight (cobalt and disc too, which the generator never saw), with",
        "  four near misses of each image's scene as hard negatives (one colour, shape, size,",
        "  background, count or relation changed, or attributes swapped between the objects), on",
        "  images roughened like generated ones (see `dpodiff/shapes/critic.py`).",
        "- `pipeline/dpodiff_judge.json` names the programmatic judge and the grammar that reads a caption (an attack's rewording is checked to mean the same scene)",
        "  (`dpodiff.shapes.judge:judge`), independent of every learned model.",
        "- `pipeline/dpodiff.json` holds the recommended settings below (25 steps, guidance 3),",
        "  which dpodiff uses unless `--steps`/`--guidance` are given;",
        "  `pipeline/negative_prompts.json` is this world's negative-prompt library (its colours,",
        "  shapes, sizes, backgrounds, flaws and counts), used instead of dpodiff's generic one.",
        "",
        "All weights are float16 safetensors; load them as float32 on CPU:",
        "",
        "```python",
        "pipe = StableDiffusionPipeline.from_pretrained(PIPELINE_DIR, torch_dtype=torch.float32)",
        "image = pipe('a red circle above a blue square', num_inference_steps=25,",
        "             guidance_scale=7.5, generator=torch.Generator().manual_seed(0)).images[0]",
        "```",
        "",
        "## Retraining",
        "",
        "`python -m dpodiff.shapes.train` retrains everything with fixed seeds on CPU",
        "(stages `clip`, `scorer`, `scorer_more`, `critic`, `critic_more`, `vae`, `unet`, `decoder`, `export`,",
        "`eval`; `--stage` picks some; fp32 checkpoints and the cached 100k-pair data set",
        "go to `runs/shapes/`). `--stop-at HH:MM` / `--max-minutes` cap the UNet, decoder,",
        "scorer_more and both critic stages (weights are saved wherever they stop, and the steps",
        "reached are recorded); `--unet-steps N` reproduces a given UNet length. Every training",
        "stage but the short `vae` saves its full state (weights, optimiser, random states) to",
        "`WORKDIR/STAGE.ckpt` every `--checkpoint-minutes` (10) and where a limit stops it;",
        "`--resume` continues it to the same weights as an uninterrupted run. `--device cuda`",
        "trains on a GPU (data and noise are drawn on the CPU, so the run stays the same).",
        "Use `--threads 1` when other processes share the cores: PyTorch's OpenMP threads",
        "spin-wait and slow down many-fold under contention.",
        "",
        "This release (3) continued the UNet alone from release 2's, on the captions above,",
        "on a 2-core CPU with nothing else running, 2 threads; release 2's text encoder and VAE",
        "and release 2.1's scorer are kept:",
        "",
        "```",
        "python -m dpodiff.shapes.train --init-from RELEASE_2_WEIGHTS --workdir runs/release3 \\",
        "    --stage vae --stage unet --unet-steps 5000 --stop-at HH:MM --threads 2",
        "python -m dpodiff.shapes.train --workdir runs/release3 --stage export --stage eval",
        "```",
        "",
        "Release 2 had continued from release 1 (trained from scratch with a 20-token window",
        "and no flaws, sentences only). The text towers' position tables grew from 20 to 77 rows (the new rows start as",
        "copies of the last trained one); the conditioning CLIP got a fresh image tower and",
        "its text tower a 5x lower learning rate, so the UNet reading it stays valid; the",
        "scorer continued with its second-phase recipe; the VAE was kept; the UNet continued",
        "from release 1's EMA weights. `training.json` records the UNet's steps.",
        "",
    ]
    if minutes:
        lines += ["Wall time of each stage of this release:", "",
                  "| stage | minutes |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in minutes.items()]
        lines.append("")
    if steps:
        lines += [f"UNet: {steps.get('steps')} steps of batch {steps.get('batch', 64)} (planned {steps.get('planned')}),"
                  f" {steps.get('minutes', 0):.1f} min; the EMA of its weights is shipped.", ""]
    for name, what in (("decoder_steps", "VAE decoder fine-tuning"), ("scorer_more_steps", "scorer second phase")):
        if name in training:
            lines += [f"{what}: {training[name].get('steps')} steps.", ""]
    lines += _critic_training()
    lines += [
        "## Recommended settings",
        "",
        "25 DDIM steps, guidance scale 3 (see the sweep below: 7.5, SD's usual value,",
        "over-sharpens this small model into blobs and artefacts). Prompts with a",
        "colour and a shape work best; relations are not learned (about chance).",
        "",
        "## Measured quality",
        "",
        "### Judge on generator images (ground truth)",
        "",
        "| test | rate |",
        "|---|---|",
        f"| true images pass | {_pct(jg['true_images_pass'])} |",
    ]
    for k in ("single", "two", "relation"):
        if f"true_images_pass_{k}" in jg:
            lines.append(f"| true images pass, {k} | {_pct(jg[f'true_images_pass_{k}'])} |")
    if "true_images_pass_copies" in jg:
        lines.append(f"| true images pass, two or three copies | {_pct(jg['true_images_pass_copies'])} |")
    lines += [
        f"| images with one wrong colour fail | {_pct(jg['wrong_colour_fail'])} |",
        f"| images with one wrong shape fail | {_pct(jg['wrong_shape_fail'])} |",
        "",
    ]
    flawed = [d for d in DEFECTS if f"flawed_{d}_pass" in jg]
    if flawed:
        lines += ["True images with a flaw, judged against their flawless caption (how much of the",
                  "scene a flaw hides from the judge; the judge checks content, not quality):", "",
                  "| flaw | " + " | ".join(flawed) + " |", "|---|" + "---|" * len(flawed),
                  "| judge pass | " + " | ".join(_pct(jg[f"flawed_{d}_pass"]) for d in flawed) + " |", ""]
    if "critic" in m:
        lines += ["### The scorer as a critic", "",
                  "`python benchmarks/critic.py --baseline RELEASE_2_WEIGHTS/scorer` (baseline: release 2's scorer;",
                  "generated images: `prompts/shapes_hard.txt`, 16 seeds each, 25 steps, guidance 3).", "",
                  critic_tables(m["critic"]), ""]
    lines += [
        "### CLIP retrieval on held-out rendered images (common wording)",
        "",
        "| task | chance | scorer CLIP | conditioning CLIP |",
        "|---|---|---|---|",
    ]
    cc = m.get("conditioning_clip_retrieval", {})
    rows = [("right caption among 20 random", "random20", "5%"),
            ("two shapes (and): right among itself + 5 near misses", "near_miss6_two", "16.7%"),
            ("two shapes (relation): right among itself + 5 near misses", "near_miss6_relation", "16.7%"),
            ("two shapes (and): right beats one near miss", "near_miss_pairwise_two", "50%"),
            ("two shapes (relation): right beats one near miss", "near_miss_pairwise_relation", "50%")]
    for name, key, chance in rows:
        lines.append(f"| {name} | {chance} | {_pct(sr[key])} | {_pct(cc[key]) if key in cc else '-'} |")
    lines += [
        "",
        "Near misses change one thing: a colour or shape, swapped colours or shapes",
        "between the two objects, another relation, another background.",
        "",
        f"### Generated images, judged ({gen['by_type'][next(iter(gen['by_type']))]['n']} prompts per type, "
        f"seeds 0.., 25 DDIM steps, guidance {gen.get('guidance', 7.5)})",
        "",
        "| prompt type | judge pass | colours right | shapes right | relation right | example |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in gen["by_type"].items():
        ch = r["checks"]
        col = [v for k, v in ch.items() if k.startswith("colour")]
        shp = [v for k, v in ch.items() if k.startswith("shape")]
        rel = _pct(ch["relation"]) if "relation" in ch else "-"
        lines.append(f"| {name} | {_pct(r['rate'])} | {_pct(sum(col) / len(col))} | "
                     f"{_pct(sum(shp) / len(shp))} | {rel} | {r['examples'][0]} |")
    qn = gen.get("quality_negative")
    if qn:
        lines += ["", f"With the negative prompt \"{qn['negative']}\" (the same prompts and seeds):", "",
                  "| prompt type | no negative prompt | with it |", "|---|---|---|"]
        lines += [f"| {name} | {_pct(gen['by_type'][name]['rate'])} | {_pct(rate)} |"
                  for name, rate in qn.items() if name != "negative"]
    if m.get("negatives"):
        from .responsiveness import Row, table

        neg = m["negatives"]
        lines += ["", f"### Does a negative prompt push away what it names? ({neg['n_single']} single-shape and "
                  f"{neg['n_two']} two-shape held-out prompts, one seed each, the same seeds with and without)", "",
                  "Flaws are read off image statistics with thresholds set on rendered images through the VAE",
                  "(`dpodiff/shapes/responsiveness.py`); \"copies\" is the judge finding more objects than asked.",
                  "Wilson 95% intervals; \"flaw gone / new\" counts the images, paired by seed, that the negative",
                  "prompt rid of the flaw or gave it. `benchmarks/negatives.py` compares generators.", "",
                  *table([Row(**r) for r in neg["rows"]])]
        if m.get("negatives_perp"):
            lines += ["", "The same prompts and seeds with `--negative-mode perp` (Perp-Neg: only the part of the negative's",
                      "direction perpendicular to the prompt's is pushed away; `benchmarks/negatives.py --negative-mode perp`):", "",
                      *table([Row(**r) for r in m["negatives_perp"]["rows"]])]
    lines += ["", "Single-shape prompts (common words) by guidance scale, 25 steps:", "",
              "| guidance | " + " | ".join(gen["by_guidance"]) + " |",
              "|---|" + "---|" * len(gen["by_guidance"]),
              "| judge pass | " + " | ".join(_pct(v) for v in gen["by_guidance"].values()) + " |", ""]
    for steps_ in (50,):
        key = f"single_common_{steps_}_steps"
        if key in gen:
            lines.append(f"- {steps_} steps, guidance {gen.get('guidance', 7.5)}: {_pct(gen[key])}")
    lines += [
        "",
        "### Synonyms: training share and effect",
        "",
        "Share of the concept's mentions in training captions; pass rates of the same",
        "scenes (12 each, seeds 0-11) worded with the synonym vs. the common word.",
        "",
        "| word | means | training share | training captions using it | judge pass with it | with the common word |",
        "|---|---|---|---|---|---|",
    ]
    counts = m.get("training_word_counts", {})
    for w, r in gen["by_word"].items():
        lines.append(f"| {w} | {r['concept']} | {_pct(r['training_share'])} | {counts.get(w, '-')} | "
                     f"{_pct(r['pass_with_synonym'])} | {_pct(r['pass_with_common_word'])} |")
    if m.get("improvement_probe"):
        lines += ["", "### Can a negative prompt repair a poorly understood wording? (8 seeds)", "",
                  "| prompt | no negative | best one-word negative | with it |", "|---|---|---|---|"]
        for r in m["improvement_probe"]:
            lines.append(f"| {r['prompt']} | {_pct(r['no_negative'])} | {r['best_negative'] or '(none)'} | "
                         f"{_pct(r['best_rate'])} |")
    lines += [
        "",
        "### Sampling time on this 2-core CPU (float32, 2 threads)",
        "",
        f"- one image, 25 steps: {t['single_image_25_steps_s']:.2f} s",
        f"- one image, 50 steps: {t['single_image_50_steps_s']:.2f} s",
        f"- batch of 50 at 25 steps: {1000 * t['batched_25_steps_s_per_image']:.0f} ms per image",
        "",
        "## Sizes", "", "| file | size |", "|---|---|", *_file_sizes(),
        "",
        "## Vocabulary",
        "",
        "Colours " + ", ".join(k for k in SYNONYMS if k in ('red', 'orange', 'yellow', 'green', 'blue',
                                                              'purple', 'white', 'black'))
        + "; shapes circle, square, triangle; sizes small, large; relations above, below,"
        " to the left of, to the right of, and; counts two, three (with plurals); flaws "
        + ", ".join(DEFECTS) + ", as trailing tags. Synonyms (share of the concept's training mentions):",
        "",
    ]
    for concept, words in training_frequencies().items():
        rest = [f"{w} {_pct(f)}" for w, f in words.items()]
        lines.append(f"- {concept}: " + ", ".join(rest))
    lines.append("")
    text = "\n".join(lines)
    (WEIGHTS_DIR / "README.md").write_text(text)
    return text
