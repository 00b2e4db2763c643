"""Loading the models a user names: a diffusers pipeline and a CLIP scorer.

Both accept a hub id or a local folder, and fail with one paragraph that says
what was looked for and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dpodiff.errors import UsageError

DEFAULT_HUB_SCORER = "openai/clip-vit-base-patch32"  # the paper's scorer, CLIP ViT-B/32
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


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


def _not_found(what: str, name: str, layout: str, error: Exception | None) -> UsageError:
    reason = f" ({type(error).__name__}: {str(error).splitlines()[0][:300]})" if error else ""
    return UsageError(
        f"Could not load the {what} {name!r}{reason}. It is neither a local folder in the {layout} layout "
        f"nor a model the Hugging Face hub cache could provide. Check the spelling; if you are offline, "
        f"download it on a connected machine (e.g. `huggingface-cli download {name}`) or pass the path of a local "
        f"folder that holds it."
    )


def _check_local(name: str, what: str, marker: str, layout: str) -> None:
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if not looks_local:
        return
    if not path.is_dir():
        raise UsageError(f"The {what} folder {name!r} does not exist. Pass an existing folder in the {layout} layout or a hub id.")
    if not (path / marker).is_file():
        raise UsageError(
            f"The folder {name!r} is not a {what} in the {layout} layout: it has no {marker}. "
            f"Save the model there with `save_pretrained`, or point to the folder that contains {marker}."
        )


def load_pipeline(name: str, device: torch.device, dtype: torch.dtype):
    """A Stable Diffusion 1.x/2.x pipeline (text encoder, UNet, VAE, scheduler) from a hub id or folder."""
    from diffusers import StableDiffusionPipeline

    _check_local(name, "diffusion model", "model_index.json", "diffusers")
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name,
            dtype=dtype,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError, EnvironmentError) as e:
        raise _not_found("diffusion model", name, "diffusers (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)", e) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False).eval()
    return pipe


def load_clip(name: str, device: torch.device, dtype: torch.dtype):
    """A transformers CLIPModel with its tokenizer and image-preprocessing settings."""
    from transformers import AutoImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    _check_local(name, "CLIP scorer", "config.json", "transformers CLIPModel")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # CLIPImageProcessor warns that torchvision is absent; we preprocess ourselves
    try:
        model = CLIPModel.from_pretrained(name, dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(name)
        processor = AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError, EnvironmentError) as e:
        raise _not_found("CLIP scorer", name, "transformers CLIPModel (config.json, model weights, tokenizer, preprocessor_config.json)", e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    model = model.to(device).requires_grad_(False).eval()
    return model, tokenizer, processor


def load_models(model: str | None, scorer: str | None, device: str = "auto", dtype: str = "auto"):
    """(pipeline, ClipScorer, model name) as the CLI loads them: the shapes world when no model is named."""
    from dpodiff.objectives.clip_loss import ClipScorer

    dev = resolve_device(device)
    if dtype != "auto" and dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}.")
    torch_dtype = default_dtype(dev) if dtype == "auto" else DTYPES[dtype]
    if model is None:
        from dpodiff import shapes

        model = str(shapes.PIPELINE_DIR)
        scorer = scorer or str(shapes.SCORER_DIR)
    pipe = load_pipeline(model, dev, torch_dtype)
    clip = ClipScorer.from_pretrained(scorer or DEFAULT_HUB_SCORER, dev, torch_dtype)
    return pipe, clip, model
