"""Which scorer a `--scorer` spec names, and loading it: one registry for every loss dpodiff optimises.

Spec forms:
- `NAME` (a hub id or a folder): a CLIPModel scored with the paper's spherical CLIP distance; but a
  NAME whose last part says "pickscore" (yuvalkirstain/PickScore_v1) is PickScore, the only use of
  that checkpoint. Write `clip:NAME` to force the CLIP distance on any CLIPModel.
- `KIND:PATH`, KIND one of the kinds in dpodiff.registry.SCORERS: `clip:openai/clip-vit-base-patch32`,
  `pickscore:yuvalkirstain/PickScore_v1`, `hpsv2:/models/HPS_v2.1_compressed.pt`,
  `imagereward:/models/ImageReward.pt`, `aesthetic:/models/sa_0_4_vit_l_14_linear.pth` (or a folder,
  see objectives/aesthetic.py).
Each kind's module is imported only when used, so a kind whose dependencies are absent costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from dpodiff.errors import UsageError
from dpodiff.loading import check_local
from dpodiff.objectives.scorer import Scorer
from dpodiff.registry import SCORERS, resolve

KINDS = SCORERS.names
FORMS = ("a hub id or folder of a CLIPModel, or KIND:PATH with KIND one of " + ", ".join(KINDS)
         + " (e.g. " + ", ".join(e.example for e in SCORERS.values()) + ")")


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
        if kind not in SCORERS:
            raise UsageError(f"--scorer {spec!r}: unknown scorer kind {kind!r}. The kinds are {', '.join(KINDS)}; pass KIND:PATH "
                             f"(e.g. {SCORERS['pickscore'].example}) or a bare hub id or folder for CLIP.")
        if not path.strip():
            raise UsageError(f"--scorer {spec!r} names no model after '{kind}:'. Pass e.g. {SCORERS[kind].example}.")
        return ScorerSpec(kind, path, spec)
    if Path(spec).expanduser().is_file():
        raise UsageError(f"--scorer {spec!r} is a file, and a bare name is read as a CLIPModel folder or hub id. Say which scorer "
                         f"the file is for with its kind, e.g. hpsv2:{spec}, imagereward:{spec} or aesthetic:{spec}.")
    if "pickscore" in spec.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower():
        return ScorerSpec("pickscore", spec, f"pickscore:{spec}")
    return ScorerSpec("clip", spec, spec)


def check_clip_model(path: str, kind: str) -> None:
    check_local(path, "CLIP scorer" if kind == "clip" else f"{kind} model", "config.json", "transformers CLIPModel")


def check_scorer(spec: str) -> ScorerSpec:
    """Cheap checks that the spec's files are there, before anything heavy loads (the pipeline included): the
    kind's own check, else that its local checkpoint exists."""
    parsed = parse_scorer_spec(spec)
    entry = SCORERS[parsed.kind]
    if entry.check:
        resolve(entry.check)(parsed.path, parsed.kind)
    elif not Path(parsed.path).expanduser().exists():
        raise UsageError(f"The {parsed.kind} checkpoint {parsed.path!r} does not exist (it is read from a local file or folder). "
                         f"Download it, e.g. `{entry.download}`, and pass its path: --scorer {entry.example}.")
    return parsed


def load_scorer(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Scorer:
    """The scorer a spec names, on `device` in `dtype` (see the module docstring for the forms)."""
    parsed = check_scorer(spec)
    entry = SCORERS[parsed.kind]
    module_name = entry.target.partition(":")[0]
    try:
        loader = entry.load()
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise UsageError(f"The {parsed.kind} scorer needs the Python module {e.name!r}, which is not installed. Install "
                             "the package that provides it into dpodiff's environment, or choose another --scorer.") from None
        raise UsageError(f"The {parsed.kind} scorer is not part of this install of dpodiff. Choose another kind: "
                         f"{', '.join(k for k in KINDS if k != parsed.kind)}.") from None
    return loader(parsed.path, torch.device(device), dtype, parsed.name)
