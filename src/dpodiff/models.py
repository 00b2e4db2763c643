"""Loading the models a user names: a diffusers pipeline (as a backend of its family) and a scorer.

Both accept a hub id or a local folder (the scorer also KIND:PATH, see objectives/scorers.py), and
fail with one paragraph that says what was looked for and how to fix it. The family (SD 1.x/2.x, SDXL, SD3, Flux) is read
from the pipeline's model_index.json; what the model's folder says about itself (model_folder.py) is read here too.
"""

from __future__ import annotations

import json

from pathlib import Path

import torch

from dpodiff.backends import Backend, backend_of, family_for
from dpodiff.errors import UsageError
from dpodiff.loading import check_local, not_found
from dpodiff.objectives.scorer import Scorer
from dpodiff.objectives.scorers import check_scorer, load_scorer

from dpodiff.defaults import DEFAULT_HUB_SCORER  # noqa: F401  (re-exported)
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
PIPELINE_LAYOUT = "diffusers (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)"


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asks for CUDA, but torch sees no CUDA device here; use --device cpu.")
    if resolved.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N.")
    return resolved


def default_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA (what SD is run in), float32 on the CPU (where float16 is slow and lossy)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _source(name: str) -> str:
    path = Path(name).expanduser()
    return str(path) if path.is_dir() else name


def model_index(name: str) -> dict:
    """The pipeline's model_index.json (a local folder, or the hub cache)."""
    from diffusers import DiffusionPipeline

    try:
        index = DiffusionPipeline.load_config(_source(name))
    except (OSError, ValueError, EnvironmentError) as e:
        raise not_found("diffusion model", name, PIPELINE_LAYOUT, e) from None
    if not isinstance(index, dict):
        raise UsageError(f"The model_index.json of {name!r} holds a {type(index).__name__}, not the object diffusers writes "
                         "(with \"_class_name\", e.g. \"StableDiffusionPipeline\", and one entry per component); "
                         "restore it from the model's original files.")
    return index


def load_weighted_components(name: str, index: dict, dtype: torch.dtype, skip: tuple[str, ...] = ()) -> dict:
    """Every component with weights (UNet, VAE, text encoders), each loaded with its loading report.

    diffusers and transformers initialise missing weights at random and at most warn; a pipeline with a
    random text encoder layer draws nonsense, so a missing or mismatched weight is an error here.
    """
    import importlib

    components, problems = {}, []
    for component, spec in index.items():
        if component.startswith("_") or component in skip or not isinstance(spec, (list, tuple)) or None in spec:
            continue
        cls = getattr(importlib.import_module(spec[0]), spec[1], None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            continue  # tokenizers, schedulers, image processors: the pipeline loads them
        components[component] = _load_checked(cls, name, component, dtype, problems)
    if problems:
        raise UsageError(f"The diffusion model {name!r} lacks weights its configuration needs, which would be initialised at random: "
                         f"{'; '.join(problems)}. Re-download or re-save the model; a partial checkpoint cannot be used.")
    return components


def _load_checked(cls, name: str, subfolder: str | None, dtype: torch.dtype, problems: list[str]):
    """One component, its missing or mismatched weights added to `problems`."""
    kwargs = {"subfolder": subfolder} if subfolder else {}
    model, info = cls.from_pretrained(_source(name), dtype=dtype, output_loading_info=True, **kwargs)
    if model.dtype != dtype:  # diffusers' transformers keep a checkpoint's float32 when asked for float64
        model.to(dtype)
    missing = list(info.get("missing_keys") or []) + [str(k[0]) for k in info.get("mismatched_keys") or []]
    if missing:
        problems.append(f"{subfolder or name}: {len(missing)} ({', '.join(sorted(missing)[:3])}{', ...' if len(missing) > 3 else ''})")
    return model


def load_vae(name: str, dtype: torch.dtype):
    """A diffusers AutoencoderKL from its own folder or hub id (e.g. madebyollin/sdxl-vae-fp16-fix), or a pipeline's vae/."""
    from diffusers import AutoencoderKL

    subfolder = "vae" if (Path(name).expanduser() / "vae" / "config.json").is_file() else None
    check_local(name if subfolder is None else str(Path(name) / "vae"), "VAE", "config.json", "diffusers AutoencoderKL")
    problems: list[str] = []
    try:
        vae = _load_checked(AutoencoderKL, name, subfolder, dtype, problems)
    except (OSError, ValueError, EnvironmentError) as e:
        raise not_found("VAE", name, "diffusers AutoencoderKL (config.json, diffusion_pytorch_model.safetensors)", e) from None
    if problems:
        raise UsageError(f"The VAE {name!r} lacks weights an AutoencoderKL needs ({problems[0]}); pass a complete VAE with --vae.")
    return vae


def family_of(model: str | None) -> type[Backend] | None:
    """A model's family as the CLI names it (None: the shapes world), from its folder's model_index.json before
    anything loads, so that checks which depend on the family (Flux's distilled guidance, its default settings)
    run first. None for a hub id or an unreadable folder: loading it will say what is wrong."""
    from dpodiff.model_folder import model_folder

    folder = model_folder(model)
    if folder is None:
        return None
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))  # ValueError: not UTF-8, not JSON
        return family_for(str(index.get("_class_name", ""))) if isinstance(index, dict) else None
    except (OSError, ValueError, UsageError):
        return None


def recommended_before_loading(model: str | None, family: type[Backend] | None):
    """What the model will recommend once loaded (Backend.recommended), read from its folder alone; `family`
    is family_of(model)."""
    from dpodiff.model_folder import model_folder, read_recommended

    recommended = read_recommended(model_folder(model))
    return family.with_family_settings(recommended) if family else recommended


def load_pipeline(name: str, device: torch.device, dtype: torch.dtype, vae: str | None = None) -> Backend:
    """The backend of a pipeline's family (text encoders, denoiser, VAE, scheduler) from a hub id or folder;
    `vae` replaces the pipeline's own VAE. The scheduler is chosen per run (GenerationSettings.scheduler)."""
    import diffusers

    check_local(name, "diffusion model", "model_index.json", "diffusers")
    index = model_index(name)
    family = family_for(str(index.get("_class_name", "")))
    extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in index else {}
    try:
        replaced = {"vae": load_vae(vae, dtype)} if vae else {}  # first: a bad --vae fails before the big loads
        components = load_weighted_components(name, index, dtype, skip=tuple(replaced)) | replaced
        pipe = getattr(diffusers, family.pipeline_class).from_pretrained(_source(name), dtype=dtype, **components, **extra)
    except (OSError, ValueError, EnvironmentError) as e:
        raise not_found("diffusion model", name, PIPELINE_LAYOUT, e) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    backend = backend_of(pipe, family)
    backend.vae_name = vae
    for module in backend.modules:
        module.requires_grad_(False).eval()
    return backend


def load_models(model: str | None, scorer: str | None, device: str = "auto", dtype: str = "auto",
                vae: str | None = None) -> tuple[Backend, Scorer, str]:
    """(backend, scorer, model name) as the CLI loads them: the shapes world when no model is named."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()  # the CLI shows its own progress
    transformers.utils.logging.disable_progress_bar()
    dev = resolve_device(device)
    if dtype != "auto" and dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}.")
    torch_dtype = default_dtype(dev) if dtype == "auto" else DTYPES[dtype]
    if model is None:
        from dpodiff import shapes

        model = str(shapes.PIPELINE_DIR)
        scorer = scorer or str(shapes.SCORER_DIR)
    scorer = scorer or DEFAULT_HUB_SCORER
    check_local(model, "diffusion model", "model_index.json", "diffusers")  # both names checked before either loads
    check_scorer(scorer)
    backend = load_pipeline(model, dev, torch_dtype, vae)
    clip = load_scorer(scorer, dev, torch_dtype)
    return backend, clip, model
