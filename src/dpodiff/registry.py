"""One table per extension point: name -> implementation, with the help line users read.

The CLI lists and checks names before torch loads, so an entry names its implementation as
"module:attribute" and imports it only when it is used. The CLI's help texts, its checks, the UI's menus
and the docs' tables all read these tables: a new optimiser, scheduler, scorer, space source or model
family is its own file plus its line here (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from dpodiff.errors import UsageError


def resolve(target: str):
    """The object a "module:attribute" string names, importing its module."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attribute", imported on first use
    help: str

    def load(self):
        return resolve(self.target)


@dataclass(frozen=True)
class OptimizerEntry(Entry):
    white_box: bool = False  # needs the logits GPO learns from the model's gradients first


@dataclass(frozen=True)
class SchedulerEntry(Entry):
    a1111: str = ""  # the sampler's name in A1111's PNG text, which other tools read


@dataclass(frozen=True)
class ScorerEntry(Entry):
    example: str = ""  # a --scorer spec of this kind
    check: str = ""  # "module:function" checking the path before anything loads; "" checks that the file exists
    download: str = ""  # how to fetch a checkpoint read from a local file only


@dataclass(frozen=True)
class SourceEntry(Entry):
    antonyms: bool = True  # offers opposites as well as synonyms
    per_prompt: bool = False  # asked once per prompt, target(resources, prompt, words, kind, per_word), not per word
    offline: bool = True  # its words are checked against the relatedness floors
    in_ui: bool = True


class Registry:
    """The entries of one extension point, read like a dict of name -> entry, in the order menus and help
    texts list them; an unknown name is a UsageError that lists the known ones."""

    def __init__(self, option: str, *entries: Entry):
        self.option = option
        self.entries = {e.name: e for e in entries}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __getitem__(self, name: str):
        return self.entries[self.check(name)]

    def values(self) -> list:
        return list(self.entries.values())

    def check(self, name: str, option: str | None = None) -> str:
        """`name`, or a UsageError naming the option (`option`, else the registry's) and the known names."""
        if name not in self.entries:
            raise UsageError(f"{option or self.option} {name!r} is not known; choose one of {', '.join(self.entries)}.")
        return name

    def load(self, name: str):
        return self[name].load()

    def listing(self, separator: str = "; ") -> str:
        """"name (help)" for each entry, for help texts."""
        return separator.join(f"{e.name} ({e.help})" for e in self.values())


OPTIMIZERS = Registry(
    "--algo",
    OptimizerEntry("random", "dpodiff.optimizers.random_search:RandomSearch", "fresh samples, the baseline"),
    OptimizerEntry("epo", "dpodiff.optimizers.evolution:Evolution", "evolutionary, black box"),
    OptimizerEntry("gpo", "dpodiff.optimizers.gradient:DistributionSampler", "the shortcut text gradient, then samples from what it learnt",
                   white_box=True),
    OptimizerEntry("hybrid", "dpodiff.optimizers.hybrid:Hybrid", "gpo, then epo from its distribution", white_box=True),
)

SCHEDULERS = Registry(
    "--scheduler",
    SchedulerEntry("ddim", "diffusers:DDIMScheduler", "DDIM", a1111="DDIM"),
    SchedulerEntry("pndm", "diffusers:PNDMScheduler", "PNDM/PLMS", a1111="PLMS"),
    SchedulerEntry("euler", "diffusers:EulerDiscreteScheduler", "Euler", a1111="Euler"),
    SchedulerEntry("euler_ancestral", "diffusers:EulerAncestralDiscreteScheduler", "Euler ancestral", a1111="Euler a"),
    SchedulerEntry("dpm_multistep", "diffusers:DPMSolverMultistepScheduler", "DPM-Solver++ multistep", a1111="DPM++ 2M"),
    SchedulerEntry("unipc", "diffusers:UniPCMultistepScheduler", "UniPC", a1111="UniPC"),
    SchedulerEntry("lms", "diffusers:LMSDiscreteScheduler", "linear multistep", a1111="LMS"),
    SchedulerEntry("heun", "diffusers:HeunDiscreteScheduler", "Heun", a1111="Heun"),
)

SCORERS = Registry(
    "--scorer kind",
    ScorerEntry("clip", "dpodiff.objectives.clip_loss:load_clip_scorer", "a CLIPModel, the paper's spherical CLIP distance",
                example="clip:openai/clip-vit-base-patch32", check="dpodiff.objectives.scorers:check_clip_model"),
    ScorerEntry("pickscore", "dpodiff.objectives.pickscore:load_pickscore", "PickScore, minus its reward",
                example="pickscore:yuvalkirstain/PickScore_v1", check="dpodiff.objectives.scorers:check_clip_model"),
    ScorerEntry("hpsv2", "dpodiff.objectives.hpsv2:load_hpsv2", "HPS v2, minus its reward",
                example="hpsv2:/models/HPS_v2.1_compressed.pt",
                download="hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir /models"),
    ScorerEntry("imagereward", "dpodiff.objectives.image_reward:load_image_reward", "ImageReward, minus its reward",
                example="imagereward:/models/ImageReward.pt",
                download="hf download THUDM/ImageReward ImageReward.pt --local-dir /models"),
    ScorerEntry("aesthetic", "dpodiff.objectives.aesthetic:load_aesthetic", "the LAION aesthetic predictor, minus its score",
                example="aesthetic:/models/sa_0_4_vit_l_14_linear.pth", check="dpodiff.objectives.aesthetic:check_aesthetic"),
)

SPACE_SOURCES = Registry(
    "--space-source",
    SourceEntry("auto", "dpodiff.spaces.build:auto_candidates", "a tuned mix of the offline sources"),
    SourceEntry("wordnet", "dpodiff.spaces.build:wordnet_candidates", "WordNet's synonyms, antonyms and sibling terms"),
    SourceEntry("thesaurus", "dpodiff.spaces.build:thesaurus_candidates", "the Moby thesaurus, synonyms only", antonyms=False),
    SourceEntry("embedding", "dpodiff.spaces.build:embedding_candidates", "the model's own token-embedding neighbours"),
    SourceEntry("llm", "dpodiff.spaces.build:llm_candidates", "an OpenAI-compatible endpoint named by --llm-url and --llm-model",
                per_prompt=True, offline=False, in_ui=False),
)

EXECUTORS = Registry(  # where bench's runs go: classes taking (BenchConfig, address) with run, score and close
    "--executor",
    Entry("local", "dpodiff.bench.local_executor:LocalExecutor", "one run after another in this process"),
    Entry("ray", "dpodiff.bench.ray_executor:RayExecutor", "one Ray task per prompt and algorithm, on a cluster or a local one"),
)

FAMILIES = Registry(  # each class says which diffusers pipeline it serves (`pipeline_class`)
    "model family",
    Entry("sd", "dpodiff.backends.stable_diffusion:StableDiffusionBackend", "Stable Diffusion 1.x/2.x"),
    Entry("sdxl", "dpodiff.backends.sdxl:StableDiffusionXLBackend", "Stable Diffusion XL"),
    Entry("sd3", "dpodiff.backends.sd3:StableDiffusion3Backend", "Stable Diffusion 3 and 3.5"),
    Entry("flux", "dpodiff.backends.flux:FluxBackend", "Flux.1"),
)
