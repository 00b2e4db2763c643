"""`dpodiff space PROMPT`: build a synonym or antonym space and write it as an editable JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dpodiff.defaults import KINDS
from dpodiff.registry import SPACE_SOURCES
from dpodiff.errors import UsageError
from dpodiff.files import write_json
from dpodiff.spaces import llm as llm_source

FORMATS = ("ours", "reference")


def load_text_model(model: str):
    """(tokenizer, text_encoder) of a diffusers pipeline folder or hub id, or of a bare CLIP text model folder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    path = Path(model)
    layouts = [("tokenizer", "text_encoder"), ("", "")] if path.exists() else [("tokenizer", "text_encoder")]
    errors = []
    for tok_sub, enc_sub in layouts:
        try:
            kw = {"subfolder": tok_sub} if tok_sub else {}
            tokenizer = CLIPTokenizer.from_pretrained(model, **kw)
            kw = {"subfolder": enc_sub} if enc_sub else {}
            return tokenizer, CLIPTextModel.from_pretrained(model, **kw)
        except (OSError, ValueError) as e:
            errors.append(str(e).splitlines()[0])
    raise UsageError(
        f"Cannot load a CLIP tokenizer and text encoder from {model!r} ({errors[0]}). Give a diffusers pipeline "
        "folder (with tokenizer/ and text_encoder/) or a model id available offline."
    )


def space(
    prompt: str = typer.Argument(..., help="The prompt to build the space for."),
    kind: str = typer.Option(..., "--kind", help=f"What to list for each word: {' | '.join(KINDS)}."),
    source: str = typer.Option("auto", help=f"Where words come from: {SPACE_SOURCES.listing()}."),
    out: Path = typer.Option(..., "--out", help="JSON file to write (edit it by hand, then pass it as --space)."),
    format: str = typer.Option("ours", "--format", help="ours (dpodiff-space) | reference (the DPO-Diff format)."),
    per_word: int = typer.Option(5, "--per-word", help="Choices per word."),
    model: Optional[str] = typer.Option(None, "--model", help="Pipeline folder or id whose text encoder the embedding source uses."),
    llm_url: Optional[str] = typer.Option(None, "--llm-url", help="OpenAI-compatible server for --source llm."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", help="Model name for --source llm."),
    llm_key_file: Optional[Path] = typer.Option(None, "--llm-key-file", help="File whose first non-empty line is the API key (default: $OPENAI_API_KEY)."),
    llm_timeout: Optional[float] = typer.Option(None, "--llm-timeout", help=f"Seconds to wait for each --source llm request (default {llm_source.DEFAULT_TIMEOUT:g})."),
    llm_retries: Optional[int] = typer.Option(None, "--llm-retries", help=f"Retries of a failed --source llm request (default {llm_source.DEFAULT_RETRIES})."),
) -> None:
    """Build a search space for a prompt: synonyms (attack) or opposites (negative prompts) per word."""
    from dpodiff.spaces.build import build_space, check_choice
    from dpodiff.spaces.reference import to_reference

    check_choice(kind, source, per_word)
    if format not in FORMATS:
        raise UsageError(f"Unknown --format {format!r}: use one of {', '.join(FORMATS)}.")
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'space.json'}.")
    if not out.parent.exists():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist; create it first.")
    llm = llm_source.config_from(llm_url, llm_model, llm_key_file, llm_timeout, llm_retries) if source == "llm" else None
    tokenizer = text_encoder = None
    if model is not None and (source == "embedding" or (source == "auto" and kind == "antonym")):
        tokenizer, text_encoder = load_text_model(model)
    elif source == "embedding":
        raise UsageError("--source embedding needs --model (the diffusers pipeline whose text encoder to search).")
    built = build_space(prompt, kind, source, per_word, tokenizer=tokenizer, text_encoder=text_encoder, llm=llm)
    if not built.positive and not built.negative:
        raise UsageError(
            f"No {kind}s found for any word of {prompt!r} with --source {source}. "
            "Try another --source (llm, or embedding with --model), or write the space by hand."
        )
    data = to_reference(built) if format == "reference" else built.to_dict()
    try:
        write_json(out, data)
    except OSError as e:
        raise UsageError(f"Cannot write --out {out} ({e.strerror}); choose a writable path.") from None
    parts = built.positive or built.negative
    typer.echo(f"Wrote {len(parts)} {'spans' if built.positive else 'slots'} ({kind}, source {source}) to {out}.")
