"""SD3 through the same protocol: two CLIP encoders and T5, a joint-attention transformer, flow matching.

A tiny SD3.5-style folder is saved and loaded like a user's, and runs every command and algorithm.
"""

import json

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request, seed_generator
from dpodiff.backends.sd3 import StableDiffusion3Backend
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers import GPOSettings
from dpodiff.report.metadata import read_metadata
from dpodiff.spaces import SearchSpace, Slot, Span
from dpodiff.testing import check_shortcut_gradient, one_hot, rms_norms_in_input_dtype, run_cli

PROMPT = "a red circle, above a blue square"  # "red" sits in the chunk "red," T5 reads as one unit


def space() -> SearchSpace:
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet red"])],
        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])],
    )


@pytest.fixture(scope="module")
def sd3(tiny_sd3_dir):
    return load_pipeline(str(tiny_sd3_dir), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def sd3_64(tiny_sd3_dir):
    with rms_norms_in_input_dtype():  # T5's and the MMDiT's RMS norms would round to float32
        yield load_pipeline(str(tiny_sd3_dir), torch.device("cpu"), torch.float64)


def test_the_family_is_read_from_model_index(sd3):
    assert isinstance(sd3, StableDiffusion3Backend) and sd3.family == "sd3" and sd3.dtype == torch.float32
    assert sd3.token_window == 77 and sd3.native_size == 16 and sd3.max_sequence_length == 256
    assert sd3.describe()["scheduler"] == "FlowMatchEulerDiscreteScheduler"


@pytest.mark.parametrize("picks", [(0, 0, 0), (2, 1, 2), (1, 2, 0)])
def test_relaxed_encoding_is_exact_at_one_hot_vertices(sd3_64, picks):
    """The joint sequence (both CLIP encoders' penultimate states, padded to T5's width, then T5's states) and the
    pooled vector equal the pipeline's own encoding of the discrete prompts, once the absent rows are dropped."""
    s = space()
    cond = sd3_64.relaxed_encoders(s, positive=True, negative=True)(one_hot(picks, s.sizes()))
    text, negative = s.render(picks)
    reference = sd3_64.encode([negative, text])
    present = cond.presence > 0.5
    for i in range(2):
        assert present[i].sum() == 77 + 256
        torch.testing.assert_close(cond.context[i][present[i]], reference.hidden[i], rtol=0, atol=1e-10)
    torch.testing.assert_close(cond.pooled, reference.pooled, rtol=0, atol=1e-10)


def test_t5_position_bias_interpolates_between_whole_positions(sd3_64):
    """Half-way between two relative positions, the bias is the mean of theirs, also where T5's buckets are logarithmic."""
    from dpodiff.backends.relaxed import negative_layout
    from dpodiff.backends.relaxed_t5 import T5RelaxedEncoder

    encoder = T5RelaxedEncoder(sd3_64.pipe.text_encoder_3, negative_layout(space(), sd3_64.pipe.tokenizer_3, 256))
    whole = encoder.position_bias(torch.arange(40, dtype=torch.float64))
    half = encoder.position_bias(torch.tensor([0.0, 0.5, 30.5], dtype=torch.float64))
    torch.testing.assert_close(half[0, :, 0, 1], (whole[0, :, 0, 0] + whole[0, :, 0, 1]) / 2)
    torch.testing.assert_close(half[0, :, 0, 2], (whole[0, :, 0, 30] + whole[0, :, 0, 31]) / 2)


def test_a_masked_text_row_changes_nothing(sd3_64):
    """The joint attention's bias on text keys: a row with presence 0 may hold anything."""
    s = space()
    cond = sd3_64.relaxed_encoders(s, positive=True, negative=True)(one_hot((0, 0, 0), s.sizes()))
    latents = sd3_64.initial_noise(0)
    scheduler = sd3_64.scheduler(GenerationSettings(steps=4))
    _, out = sd3_64.guided_output(scheduler, 1, latents, cond, 5.0)
    absent = cond.presence == 0
    assert absent.any()
    scrambled = type(cond)(cond.context.masked_fill(absent[..., None], 123.0), cond.presence, cond.pooled)
    _, again = sd3_64.guided_output(scheduler, 1, latents, scrambled, 5.0)
    torch.testing.assert_close(again, out, rtol=0, atol=1e-10)


@pytest.mark.parametrize("t_index", [0, 2])
def test_shortcut_gradient_matches_finite_differences(sd3_64, tiny_scorer_dir, t_index):
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)
    check_shortcut_gradient(sd3_64, scorer, space(), t_index, guidance=4.0)


def test_generate_draws_what_the_diffusers_pipeline_draws(sd3):
    requests = [Request(PROMPT, "blurry", 0), Request("a blue square", "", 3)]
    ours = sd3.generate(requests, GenerationSettings(steps=3, guidance=4.0))
    encoded = sd3.encode([r.prompt for r in requests] + [r.negative_prompt for r in requests])
    latents = sd3.pipe(prompt_embeds=encoded.hidden[:2], negative_prompt_embeds=encoded.hidden[2:], pooled_prompt_embeds=encoded.pooled[:2],
                       negative_pooled_prompt_embeds=encoded.pooled[2:], num_inference_steps=3, guidance_scale=4.0,
                       generator=[seed_generator(r.seed) for r in requests], output_type="latent").images
    torch.testing.assert_close(ours, sd3.decode(latents), atol=1e-5, rtol=0)
    other = sd3.generate([Request(PROMPT, "green", 0)], GenerationSettings(steps=3, guidance=4.0))
    assert (other[0] - ours[0]).abs().max() > 1e-3  # the negative prompt steers


def test_a_dynamically_shifted_schedule_follows_the_pipeline(sd3):
    """A scheduler config with use_dynamic_shifting (as Flux's and some SD3 fine-tunes' have) takes its shift from the image size."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=4, max_image_seq_len=64)
    backend = StableDiffusion3Backend(type(sd3.pipe)(**sd3.pipe.components | {"scheduler": scheduler}))
    requests = [Request(PROMPT, "blurry", 0)]
    ours = backend.generate(requests, GenerationSettings(steps=3, guidance=4.0))
    encoded = backend.encode([PROMPT, "blurry"])
    latents = backend.pipe(prompt_embeds=encoded.hidden[:1], negative_prompt_embeds=encoded.hidden[1:], pooled_prompt_embeds=encoded.pooled[:1],
                           negative_pooled_prompt_embeds=encoded.pooled[1:], num_inference_steps=3, guidance_scale=4.0,
                           generator=[seed_generator(0)], output_type="latent").images
    torch.testing.assert_close(ours, backend.decode(latents), atol=1e-5, rtol=0)
    assert backend.scheduler(GenerationSettings(steps=3)).sigmas[1] != sd3.scheduler(GenerationSettings(steps=3)).sigmas[1]


def test_a_noise_prediction_scheduler_is_refused(sd3):
    with pytest.raises(dpodiff.UsageError, match="--scheduler ddim .*flow matching.*leave --scheduler out"):
        sd3.generate([Request(PROMPT, "", 0)], GenerationSettings(steps=2, scheduler="ddim"))


@pytest.mark.parametrize("algo", ["random", "epo", "gpo", "hybrid"])
def test_every_algorithm_runs_on_sd3(sd3, tiny_scorer, algo):
    result = dpodiff.optimize(PROMPT, pipeline=sd3, scorer=tiny_scorer, space=space(), algorithm=algo, budget=5, seeds=[0, 1],
                              steps=3, guidance=4.0, positive=True, gpo_settings=GPOSettings(iterations=2))
    assert result.evaluations == 5 and result.generation["family"] == "sd3"
    assert result.images["best"][0].size == (16, 16)
    assert (result.gpo is not None) == (algo in ("gpo", "hybrid"))


def test_every_command_takes_an_sd3_folder(tmp_path, tiny_sd3_dir, tiny_scorer_dir):
    models = ["--model", tiny_sd3_dir, "--scorer", tiny_scorer_dir, "--steps", 2, "--guidance", 4, "--seeds", 1]
    space_file = tmp_path / "space.json"
    space().save(space_file)
    for command in ("improve", "attack"):
        extra = ["--min-similarity", 0.5] if command == "attack" else ["--positive", "--algo", "hybrid"]
        code, err = run_cli(command, PROMPT, "--space", space_file, "--budget", 3, "--out", tmp_path / command, *extra, *models)
        assert code == 0, err
        assert json.loads((tmp_path / command / "result.json").read_text())["generation"]["family"] == "sd3"
    code, err = run_cli("generate", PROMPT, "--negative-prompt", "blurry", "--out", tmp_path / "generate", *models)
    assert code == 0, err
    parameters, _ = read_metadata(tmp_path / "generate" / "seed0.png")
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 4" in parameters
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPT + "\n")
    code, err = run_cli("bench", prompts, "--algos", "random,gpo", "--budget", 3, "--space", space_file, "--out", tmp_path / "bench", *models)
    assert code == 0, err
