"""The settings inside every PNG dpodiff writes, and reading them back.

Two text chunks:
- `parameters`: the A1111 "infotext" that A1111, ComfyUI and Civitai read (drop the image on them):

      a red circle above a blue square
      Negative prompt: green, blurry
      Steps: 50, Sampler: DDIM, CFG scale: 7.5, Seed: 1234, Size: 512x512, Model: stable-diffusion-v1-5, Loss: 0.7312

  The "Negative prompt:" line only when there is one. The last line is `Key: value` pairs joined by
  ", "; a value holding a comma, a colon or a newline is written as a JSON string, as A1111 quotes it.
- `dpodiff`: JSON with everything needed to make the image again: prompt, negative prompt, seed,
  loss, role (original, best, generated), the run's RunConfig and generation settings.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from dpodiff.errors import UsageError
from dpodiff.files import finite
from dpodiff.registry import SCHEDULERS

PARAMETERS_KEY = "parameters"  # the chunk A1111 writes and reads
DPODIFF_KEY = "dpodiff"

# our scheduler names (dpodiff.registry.SCHEDULERS) and other classes -> the sampler names people know from A1111
A1111_SAMPLERS = {
    **{e.name: e.a1111 for e in SCHEDULERS.values()},
    "FlowMatchEulerDiscreteScheduler": "Euler",  # SD3's and Flux's sampler: Forge writes "Euler" with "Schedule type: Simple"
}
FLOW_SCHEDULE = {"FlowMatchEulerDiscreteScheduler": "Simple"}  # ComfyUI's euler/simple: sigmas spaced evenly, then shifted

# One `Key: value` pair of the last line, as A1111 matches it (modules/infotext_utils.py): a key of
# word characters, spaces, '-' and '/'; a value that is a JSON string (escapes allowed) or runs to the next comma.
PARAM_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
PARAM_KEY = re.compile(r"\w[\w \-/]+")
NEGATIVE_PREFIX = "Negative prompt:"


@dataclass
class ImageInfo:
    """How one image was made: what the `parameters` chunk says, plus `extra` for the `dpodiff` chunk."""

    prompt: str
    negative_prompt: str
    steps: int
    scheduler: str  # our name (dpodiff.registry.SCHEDULERS) or, for another scheduler, its class name
    guidance: float
    seed: int
    width: int
    height: int
    model: str  # hub id or local folder
    parameters: dict = field(default_factory=dict)  # more pairs for the parameters line: {"Scorer": ..., "Loss": ...}
    extra: dict = field(default_factory=dict)  # more fields of the dpodiff JSON: loss, role, config, generation
    negative_mode: str = "cfg"  # how the negative prompt steered (backends/guidance.py); only perp is written out
    true_cfg: float | None = None  # Flux: true CFG's scale; `guidance` is then the distilled one (Forge's two keys)

    def dpodiff_dict(self) -> dict:
        """The `dpodiff` chunk: prompt, negative prompt and seed always, then `extra`."""
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, "seed": self.seed, **self.extra}

    def png(self):
        """A PngInfo with both chunks: `parameters` as tEXt (iTXt when the text is not Latin-1), `dpodiff` as iTXt."""
        from PIL.PngImagePlugin import PngInfo

        png = PngInfo()
        png.add_text(PARAMETERS_KEY, format_parameters(self))
        png.add_itxt(DPODIFF_KEY, json.dumps(finite(self.dpodiff_dict()), ensure_ascii=False, allow_nan=False, default=str))
        return png


def dpodiff_image(prompt: str, negative_prompt: str, seed: int, image, *, model: str, scorer: str, loss: float | None, role: str,
                  generation: dict, config: dict, task: str | None = None, algorithm: str | None = None, **about) -> ImageInfo:
    """How an image dpodiff made was made, for its PNG: the generation settings a run recorded (`generation`, as in
    result.json), the scorer and the loss; `about` (the original prompt of a run, the loss prompt of generate) joins
    the dpodiff chunk."""
    from dpodiff import __version__

    return ImageInfo(
        prompt, negative_prompt, generation.get("steps"), generation.get("scheduler"), generation.get("guidance"), seed,
        image.width, image.height, model,
        parameters={"Scorer": model_label(scorer), "Loss": None if loss is None else round(loss, 4), **({"Task": task} if task else {}),
                    "Role": role},
        extra={"role": role, "loss": loss, **({"task": task} if task else {}), **about, "model": model, "scorer": scorer,
               **({"algorithm": algorithm} if algorithm else {}), "config": config, "generation": generation, "version": __version__},
        negative_mode=generation.get("negative_mode", "cfg"), true_cfg=generation.get("true_cfg"),
    )


def sampler_label(scheduler: str) -> str:
    """A1111's name for one of our schedulers ("euler_ancestral" -> "Euler a"); any other name as it is."""
    return A1111_SAMPLERS.get(scheduler, scheduler)


def model_label(model: str) -> str:
    """A hub id as it is, a local folder by its last part (a full path would tell strangers the user's folders),
    the shipped shapes world by its name and release."""
    from dpodiff.shapes import PIPELINE_DIR, RELEASE, SCORER_DIR, SCORER_RELEASE

    for folder, name in ((PIPELINE_DIR, f"shapes-world-r{RELEASE}"), (SCORER_DIR, f"shapes-world-scorer-r{SCORER_RELEASE}")):
        if model.removeprefix("clip:") in (str(folder), str(folder.resolve())):
            return name
    if model.startswith(("/", "~", ".")) or "\\" in model or re.match(r"^[A-Za-z]:", model):
        return re.split(r"[\\/]", model.rstrip("\\/"))[-1] or model
    return model


def quote(value) -> str:
    """A value for the parameters line: as it is, or as a JSON string where it holds a comma, colon,
    newline (A1111's rule) or starts with a quote (which a reader would otherwise take for one)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if any(c in text for c in ",:\n") or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def format_parameters(info: ImageInfo) -> str:
    """The A1111 infotext of `info`."""
    pairs = {
        "Steps": info.steps,
        "Sampler": sampler_label(info.scheduler),
        "Schedule type": FLOW_SCHEDULE.get(info.scheduler),
        "CFG scale": info.guidance if info.true_cfg is None else info.true_cfg,
        "Distilled CFG Scale": None if info.true_cfg is None else info.guidance,
        "Negative mode": None if info.negative_mode == "cfg" else info.negative_mode,
        "Seed": info.seed,
        "Size": f"{info.width}x{info.height}",
        "Model": model_label(info.model) if info.model else None,
        **info.parameters,
    }
    for key in pairs:
        if not PARAM_KEY.fullmatch(key):
            raise ValueError(f"{key!r} cannot be a parameters key: use letters, digits, spaces, '-' and '/'.")
    last = ", ".join(f"{key}: {quote(value)}" for key, value in pairs.items() if _shown(value))
    lines = [info.prompt]
    if info.negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {info.negative_prompt}")
    return "\n".join([*lines, last])


def _shown(value) -> bool:
    """Nothing, an empty text and a non-finite number are left out of the parameters line."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is not None and str(value) != ""


def parse_parameters(text: str) -> dict[str, str]:
    """An A1111 infotext as A1111 reads it: {"Prompt": ..., "Negative prompt": ..., "Steps": "50", ...}.

    The last line holds the pairs only when at least 3 pairs are found in it (else it belongs to the
    prompt); lines from the one starting "Negative prompt:" on are the negative prompt; each line is
    stripped. Values stay text, quoted ones unquoted; "Size" stays "WxH" (A1111 splits it into Size-1/-2).
    """
    *lines, last = text.strip().split("\n")
    if len(PARAM_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX):].strip()
        (negative if in_negative else prompt).append(line)
    parsed = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in PARAM_PAIR.findall(last):
        parsed[key] = unquote(value)
    return parsed


def read_metadata(path: str | Path) -> tuple[str | None, dict | None]:
    """(parameters text, dpodiff dict) of a PNG, None for a chunk it does not have.

    A missing file, one that is not a PNG, or a dpodiff chunk that is not a JSON object: a UsageError.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}; give a PNG file that dpodiff wrote.")
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise UsageError(f"{path} is a {image.format} image, not a PNG; dpodiff keeps its settings in PNG text chunks.")
            chunks = dict(image.text)
    except (UnidentifiedImageError, SyntaxError) as e:  # PIL reports a damaged PNG as SyntaxError
        raise UsageError(f"{path} is not a PNG image that can be read ({e}).") from None
    except OSError as e:
        raise UsageError(f"Could not read {path}: {e.strerror or e}.") from None
    data = chunks.get(DPODIFF_KEY)
    if data is not None:
        try:
            data = json.loads(data)
        except ValueError as e:
            raise UsageError(f"The dpodiff chunk of {path} is not valid JSON ({e}); the file was changed after dpodiff wrote it.") from None
        if not isinstance(data, dict):
            raise UsageError(f"The dpodiff chunk of {path} is not a JSON object; the file was changed after dpodiff wrote it.")
    return chunks.get(PARAMETERS_KEY), data
