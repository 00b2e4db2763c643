"""The model card (weights/README.md), written from measured metrics.

The card's text is the template ``card.md.j2`` beside this module. The functions here only turn the
metrics into the values it shows (formatted numbers, table rows), so the wording can be edited as text.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from . import WEIGHTS_DIR
from .critic_eval import critic_tables
from .grammar import CAPTION_MIXES, DEFECTS, P_ONE_TAG, P_TAGS, SYNONYMS, training_frequencies

TEMPLATE = "card.md.j2"
_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")  # SYNONYMS' colour concepts
_RETRIEVAL = ("random20", "near_miss6_two", "near_miss6_relation", "near_miss_pairwise_two", "near_miss_pairwise_relation")
_OTHER_STEPS = (("decoder_steps", "VAE decoder fine-tuning"), ("scorer_more_steps", "scorer second phase"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _file_sizes() -> list[tuple[str, str]]:
    """(path, MiB) of each shipped weights file, measured where the card is written."""
    return [(str(path.relative_to(WEIGHTS_DIR)), f"{path.stat().st_size / 2**20:.1f}")
            for path in sorted(WEIGHTS_DIR.rglob("*.safetensors"))]


def _critic_training() -> list[dict]:
    """The phases of the shipped scorer's retraining as a critic (release 2.1), from the training logs
    saved beside the weights; none where the logs are absent."""
    phases = []
    for name in ("critic", "critic_more"):
        path = WEIGHTS_DIR / f"{name}_steps.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        log = [{"step": r["step"], "minutes": r["minutes"], "loss": r["loss"],
                "two": _pct(r["misses_two"]), "relation": _pct(r["misses_relation"])} for r in record["log"]]
        phases.append({"name": name, "steps": record["steps"], "batch": record["batch"], "planned": record["planned"],
                       "negatives": record["negatives"], "miss_images": bool(record.get("miss_images")), "log": log})
    return phases


def _captions(training: dict) -> dict:
    """The shares of the caption mix the UNet was trained on (release 3 did not record its mix: "varied")."""
    mix = CAPTION_MIXES[training.get("unet_steps", {}).get("captions", "varied")]
    return {"defect": _pct(mix.defect), "copies": _pct(mix.copies), "named": _pct(mix.named), "tags": _pct(P_TAGS),
            "one_tag": _pct(P_ONE_TAG), "flaws_alone": _pct(mix.flaws_alone), "partial": _pct(mix.partial),
            "count_alone": mix.count_alone}


def _training(training: dict) -> dict:
    """This release's wall times and step counts, as far as training.json recorded them."""
    steps = training.get("unet_steps", {})
    unet = None
    if steps:
        unet = {"steps": steps.get("steps"), "batch": steps.get("batch", 64), "planned": steps.get("planned"),
                "minutes": f"{steps.get('minutes', 0):.1f}"}
    return {"stage_minutes": [(k, f"{v:.1f}") for k, v in training.get("stage_minutes", {}).items()],
            "unet": unet,
            "other_steps": [(what, training[name].get("steps")) for name, what in _OTHER_STEPS if name in training]}


def _judge(jg: dict) -> dict:
    """The judge's rates on true and altered images; per-kind and per-flaw rows only where measured."""
    by_kind = [(k, _pct(jg[f"true_images_pass_{k}"])) for k in ("single", "two", "relation")
               if f"true_images_pass_{k}" in jg]
    if "true_images_pass_copies" in jg:
        by_kind.append(("two or three copies", _pct(jg["true_images_pass_copies"])))
    flawed = [d for d in DEFECTS if f"flawed_{d}_pass" in jg]
    return {"true_pass": _pct(jg["true_images_pass"]), "by_kind": by_kind,
            "wrong_colour": _pct(jg["wrong_colour_fail"]), "wrong_shape": _pct(jg["wrong_shape_fail"]),
            "flawed": flawed, "flawed_pass": [_pct(jg[f"flawed_{d}_pass"]) for d in flawed]}


def _type_row(name: str, r: dict) -> dict:
    """One prompt type's pass rate and per-check rates (colours and shapes averaged over the objects)."""
    ch = r["checks"]
    col = [v for k, v in ch.items() if k.startswith("colour")]
    shp = [v for k, v in ch.items() if k.startswith("shape")]
    return {"name": name, "rate": _pct(r["rate"]), "colours": _pct(sum(col) / len(col)),
            "shapes": _pct(sum(shp) / len(shp)), "relation": _pct(ch["relation"]) if "relation" in ch else "-",
            "example": r["examples"][0]}


def _generation(gen: dict) -> dict:
    """The judged generated images: by prompt type, with the quality negative, by guidance and by steps."""
    qn = gen.get("quality_negative")
    quality = None
    if qn:
        quality = {"negative": qn["negative"],
                   "rows": [(name, _pct(gen["by_type"][name]["rate"]), _pct(rate))
                            for name, rate in qn.items() if name != "negative"]}
    return {"n": gen["by_type"][next(iter(gen["by_type"]))]["n"], "guidance": gen.get("guidance", 7.5),
            "by_type": [_type_row(name, r) for name, r in gen["by_type"].items()], "quality_negative": quality,
            "scales": list(gen["by_guidance"]), "scale_pass": [_pct(v) for v in gen["by_guidance"].values()],
            "more_steps": [(s, _pct(gen[f"single_common_{s}_steps"])) for s in (50,)
                           if f"single_common_{s}_steps" in gen]}


def _negatives(m: dict) -> dict | None:
    """benchmarks/negatives.py's tables (plain and Perp-Neg), or None where the metrics have none."""
    if not m.get("negatives"):
        return None
    from .responsiveness import Row, table

    neg, perp = m["negatives"], m.get("negatives_perp")
    return {"n_single": neg["n_single"], "n_two": neg["n_two"], "table": table([Row(**r) for r in neg["rows"]]),
            "perp": table([Row(**r) for r in perp["rows"]]) if perp else None}


def _synonyms(m: dict) -> list[dict]:
    """Each synonym's training share and count, and the pass rates with it and with the common word."""
    counts = m.get("training_word_counts", {})
    return [{"word": w, "concept": r["concept"], "share": _pct(r["training_share"]), "captions": counts.get(w, "-"),
             "synonym_pass": _pct(r["pass_with_synonym"]), "common_pass": _pct(r["pass_with_common_word"])}
            for w, r in m["generation"]["by_word"].items()]


def _probe(m: dict) -> list[dict]:
    """The improvement probe's rows: the best one-word negative for each poorly understood prompt."""
    return [{"prompt": r["prompt"], "without": _pct(r["no_negative"]), "negative": r["best_negative"] or "(none)",
             "rate": _pct(r["best_rate"])} for r in m.get("improvement_probe") or []]


def _sampling(t: dict) -> dict:
    return {"single_25": f"{t['single_image_25_steps_s']:.2f}", "single_50": f"{t['single_image_50_steps_s']:.2f}",
            "batched_ms": f"{1000 * t['batched_25_steps_s_per_image']:.0f}"}


def card_values(m: dict) -> dict:
    """Everything the template shows, formatted. A required metric that ``m`` lacks raises KeyError
    naming it; optional ones (training, critic, negatives, probe, ...) leave their sections out."""
    training, cc = m.get("training", {}), m.get("conditioning_clip_retrieval", {})
    return {
        "captions": _captions(training), "defects": list(DEFECTS), "training": _training(training),
        "critic_phases": _critic_training(), "judge": _judge(m["judge_ground_truth"]),
        "critic": critic_tables(m["critic"]) if "critic" in m else None,
        "scorer": {k: _pct(m["scorer_retrieval"][k]) for k in _RETRIEVAL},
        "conditioning": {k: _pct(cc[k]) if k in cc else "-" for k in _RETRIEVAL},
        "generation": _generation(m["generation"]), "negatives": _negatives(m), "synonyms": _synonyms(m),
        "probe": _probe(m), "sampling": _sampling(m["sampling_time"]), "file_sizes": _file_sizes(),
        "colours": [k for k in SYNONYMS if k in _COLOURS],
        "vocabulary": [(concept, [f"{w} {_pct(f)}" for w, f in words.items()])
                       for concept, words in training_frequencies().items()],
    }


def environment() -> jinja2.Environment:
    """Strict, so a value the template names but is not given raises instead of printing nothing;
    block tags on their own lines leave no line behind (trim_blocks, lstrip_blocks)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render_card(m: dict) -> str:
    """The card's text, without writing it (tests compare it with the committed card)."""
    return environment().get_template(TEMPLATE).render(card_values(m))


def write_card(m: dict) -> str:
    """Render the card and write it to weights/README.md; returns its text."""
    text = render_card(m)
    (WEIGHTS_DIR / "README.md").write_text(text)
    return text
