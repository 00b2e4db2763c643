"""Which scorer a `--scorer` spec names, and loading it: one registry for every loss dpodiff optimises.

Spec forms:
- `NAME` (a hub id or a folder): a CLIPModel scored with the paper's spherical CLIP distance; but a
  NAME whose last part says "pickscore" (yuvalkirstain/PickScore_v1) is PickScore, the only use of
  that checkpoint. Write `clip:NAME` to force the CLIP distance on any CLIPModel.
- `KIND:PATH`, KIND one of KINDS: `clip:openai/clip-vit-base-patch32`,
  `pickscore:yuvalkirstain/PickScore_v1`, `hpsv2:/models/HPS_v2.1_compressed.pt`,
  `imagereward:/models/ImageReward.pt`, `aesthetic:/models/sa_0_4_vit_l_14_linear.pth` (or a folder,
  see objectives/aesthetic.py).
Each kind's module is imported only when used, so a kind whose dependencies are absent costs nothing.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from dpodiff.errors import UsageError
from dpodiff.loading import check_local
from dpodiff.objectives.scorer import Scorer

# kind -> (module, loader(path, device, dtype, name) -> Scorer)
LOADERS = {
    "clip": ("dpodiff.objectives.clip_loss", "load_clip_scorer"),
    "pickscore": ("dpodiff.objectives.pickscore", "load_pickscore"),
    "hpsv2": ("dpodiff.objectives.hpsv2", "load_hpsv2"),
    "imagereward": ("dpodiff.objectives.image_reward", "load_image_reward"),
    "aesthetic": ("dpodiff.objectives.aesthetic", "load_aesthetic"),
}
KINDS = tuple(LOADERS)
EXAMPLES = {
    "clip": "clip:openai/clip-vit-base-patch32",
    "pickscore": "pickscore:yuvalkirstain/PickScore_v1",
    "hpsv2": "hpsv2:/models/HPS_v2.1_compressed.pt",
    "imagereward": "imagereward:/models/ImageReward.pt",
    "aesthetic": "aesthetic:/models/sa_0_4_vit_l_14_linear.pth",
}
DOWNLOADS = {  # for the kinds read from local files only
    "hpsv2": "hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir /models",
    "imagereward": "hf download THUDM/ImageReward ImageReward.pt --local-dir /models",
}
FORMS = "a hub id or folder of a CLIPModel, or KIND:PATH with KIND one of " + ", ".join(KINDS) + " (e.g. " + ", ".join(EXAMPLES.values()) + ")"


@dataclass(frozen=True)
class ScorerSpec:
    kind: str
    path: str
    name: str  # what result files record: the spec as typed, or kind:path when the kind was inferred


def parse_scorer_spec(spec: str) -> ScorerSpec:
    """`KIND:PATH` or a bare hub id / folder; an unknown kind or an empty path is a UsageError."""
    if not spec or not spec.strip():
        raise UsageError(f"--scorer is empty. Pass {FORMS}.")
    kind, sep, path = spec.partition(":")
    # a one-letter "kind" is a Windows drive (C:\...); an existing path with a colon is a path
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]+", kind) and not Path(spec).expanduser().exists():
        kind = kind.lower()
        if kind not in LOADERS:
            raise UsageError(f"--scorer {spec!r}: unknown scorer kind {kind!r}. The kinds are {', '.join(KINDS)}; pass KIND:PATH "
                             f"(e.g. {EXAMPLES['pickscore']}) or a bare hub id or folder for CLIP.")
        if not path.strip():
            raise UsageError(f"--scorer {spec!r} names no model after '{kind}:'. Pass e.g. {EXAMPLES[kind]}.")
        return ScorerSpec(kind, path, spec)
    if Path(spec).expanduser().is_file():
        raise UsageError(f"--scorer {spec!r} is a file, and a bare name is read as a CLIPModel folder or hub id. Say which scorer "
                         f"the file is for with its kind, e.g. hpsv2:{spec}, imagereward:{spec} or aesthetic:{spec}.")
    if "pickscore" in spec.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower():
        return ScorerSpec("pickscore", spec, f"pickscore:{spec}")
    return ScorerSpec("clip", spec, spec)


def check_scorer(spec: str) -> ScorerSpec:
    """Cheap checks that the spec's files are there, before anything heavy loads (the pipeline included)."""
    parsed = parse_scorer_spec(spec)
    if parsed.kind in ("clip", "pickscore"):
        check_local(parsed.path, "CLIP scorer" if parsed.kind == "clip" else "PickScore model", "config.json", "transformers CLIPModel")
    elif parsed.kind == "aesthetic":
        from dpodiff.objectives.aesthetic import aesthetic_parts

        _, clip_name = aesthetic_parts(parsed.path)
        check_local(clip_name, "CLIP model of the aesthetic predictor", "config.json", "transformers CLIPModel")
    elif parsed.kind in DOWNLOADS and not Path(parsed.path).expanduser().exists():
        raise UsageError(f"The {parsed.kind} checkpoint {parsed.path!r} does not exist (it is read from a local file or folder). "
                         f"Download it, e.g. `{DOWNLOADS[parsed.kind]}`, and pass its path: --scorer {EXAMPLES[parsed.kind]}.")
    return parsed


def load_scorer(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Scorer:
    """The scorer a spec names, on `device` in `dtype` (see the module docstring for the forms)."""
    parsed = check_scorer(spec)
    module_name, function = LOADERS[parsed.kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise UsageError(f"The {parsed.kind} scorer needs the Python module {e.name!r}, which is not installed. Install "
                             "the package that provides it into dpodiff's environment, or choose another --scorer.") from None
        raise UsageError(f"The {parsed.kind} scorer is not part of this install of dpodiff. Choose another kind: "
                         f"{', '.join(k for k in KINDS if k != parsed.kind)}.") from None
    return getattr(module, function)(parsed.path, torch.device(device), dtype, parsed.name)
