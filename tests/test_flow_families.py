"""The flow-matching families through the same protocol: SD3 (two CLIP encoders and T5, an MMDiT) and Flux (CLIP's
pooled output and T5, a guidance-distilled MMDiT on packed latents, negatives through true CFG).

Tiny folders of both are saved and loaded like a user's, and run every command and algorithm.
"""

import json
from dataclasses import replace

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request, seed_generator
from dpodiff.backends.flux import FluxBackend
from dpodiff.backends.sd3 import StableDiffusion3Backend
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers import GPOSettings
from dpodiff.report.metadata import read_metadata
from dpodiff.spaces import SearchSpace, Slot, Span
from cli_runner import run_cli
from dpodiff.testing import check_shortcut_gradient, float64_arithmetic, one_hot

PROMPT = "a red circle, above a blue square"  # "red" sits in the chunk "red," T5 reads as one unit
FAMILIES = {"sd3": ("tiny_sd3_dir", StableDiffusion3Backend, 256), "flux": ("tiny_flux_dir", FluxBackend, 512)}
SETTINGS = GenerationSettings(steps=3, guidance=4.0, true_cfg=3.0)


def space() -> SearchSpace:
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet red"])],
        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])],
    )


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(scope="module")
def folder(request, family):
    return request.getfixturevalue(FAMILIES[family][0])


@pytest.fixture(scope="module")
def backend(folder):
    return load_pipeline(str(folder), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def backend64(folder):
    with float64_arithmetic():  # the models' RMS norms and Flux's rotary embedding would round to float32
        yield load_pipeline(str(folder), torch.device("cpu"), torch.float64)


def pipeline_images(backend, requests, settings) -> torch.Tensor:
    """The diffusers pipeline's own images for these requests, from the backend's encodings."""
    encoded = backend.encode([r.prompt for r in requests] + [r.negative_prompt for r in requests])
    n = len(requests)
    embeds = {"prompt_embeds": encoded.hidden[:n], "negative_prompt_embeds": encoded.hidden[n:],
              "pooled_prompt_embeds": encoded.pooled[:n], "negative_pooled_prompt_embeds": encoded.pooled[n:]}
    if backend.family == "flux":
        embeds |= {"true_cfg_scale": settings.true_cfg, "height": backend.native_size, "width": backend.native_size}
    latents = backend.pipe(**embeds, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                           generator=[seed_generator(r.seed) for r in requests], output_type="latent").images
    if backend.family == "flux":
        latents = type(backend.pipe)._unpack_latents(latents, backend.native_size, backend.native_size, backend.pipe.vae_scale_factor)
    return backend.decode(latents)


def test_the_family_is_read_from_model_index(backend, family):
    _, cls, window = FAMILIES[family]
    assert type(backend) is cls and backend.family == family and backend.dtype == torch.float32
    assert backend.token_window == 77 and backend.native_size == 16 and backend.max_sequence_length == window
    assert backend.describe()["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert backend.recommended.steps == 28  # the pipeline's own defaults, where the folder recommends nothing


@pytest.mark.parametrize("picks", [(0, 0, 0), (2, 1, 2), (1, 2, 0)])
def test_relaxed_encoding_is_exact_at_one_hot_vertices(backend64, picks):
    """The text sequence (SD3: both CLIP encoders' penultimate states padded to T5's width, then T5's; Flux: T5's) and
    the pooled vector equal the pipeline's own encoding of the discrete prompts, once the absent rows are dropped."""
    s = space()
    cond = backend64.relaxed_encoders(s, positive=True, negative=True)(one_hot(picks, s.sizes()))
    text, negative = s.render(picks)
    reference = backend64.encode([negative, text])
    present = cond.presence > 0.5
    for i in range(2):
        assert present[i].sum() == reference.hidden.shape[1]
        torch.testing.assert_close(cond.context[i][present[i]], reference.hidden[i], rtol=0, atol=1e-10)
    torch.testing.assert_close(cond.pooled, reference.pooled, rtol=0, atol=1e-10)


def test_t5_position_bias_interpolates_between_whole_positions(backend64):
    """Half-way between two relative positions, the bias is the mean of theirs, also where T5's buckets are logarithmic."""
    from dpodiff.backends.relaxed import negative_layout
    from dpodiff.backends.relaxed_t5 import T5RelaxedEncoder

    t5, tokenizer = (backend64.pipe.text_encoder_3, backend64.pipe.tokenizer_3) if backend64.family == "sd3" else \
        (backend64.pipe.text_encoder_2, backend64.pipe.tokenizer_2)
    encoder = T5RelaxedEncoder(t5, negative_layout(space(), tokenizer, backend64.max_sequence_length))
    whole = encoder.position_bias(torch.arange(40, dtype=torch.float64))
    half = encoder.position_bias(torch.tensor([0.0, 0.5, 30.5], dtype=torch.float64))
    torch.testing.assert_close(half[0, :, 0, 1], (whole[0, :, 0, 0] + whole[0, :, 0, 1]) / 2)
    torch.testing.assert_close(half[0, :, 0, 2], (whole[0, :, 0, 30] + whole[0, :, 0, 31]) / 2)


def test_a_masked_text_row_changes_nothing(backend64):
    """Absent text rows are left out of every attention: a row with presence 0 may hold anything."""
    s = space()
    cond = backend64.relaxed_encoders(s, positive=True, negative=True)(one_hot((0, 0, 0), s.sizes()))
    latents = backend64.initial_noise(0)
    scheduler = backend64.scheduler(SETTINGS)
    _, out = backend64.guided_output(scheduler, 1, latents, cond, SETTINGS)
    absent = cond.presence == 0
    assert absent.any()
    scrambled = type(cond)(cond.context.masked_fill(absent[..., None], 123.0), cond.presence, cond.pooled)
    _, again = backend64.guided_output(scheduler, 1, latents, scrambled, SETTINGS)
    torch.testing.assert_close(again, out, rtol=0, atol=1e-10)


@pytest.mark.parametrize("t_index", [0, 2])
def test_shortcut_gradient_matches_finite_differences(backend64, tiny_scorer_dir, t_index):
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)
    check_shortcut_gradient(backend64, scorer, space(), t_index, guidance=4.0)


def test_generate_draws_what_the_diffusers_pipeline_draws(backend):
    """Flux: true CFG with the negative prompt, as diffusers' true_cfg_scale; the schedule's shift from the image size."""
    requests = [Request(PROMPT, "blurry", 0), Request("a blue square", "low quality", 3)]
    ours = backend.generate(requests, SETTINGS)
    torch.testing.assert_close(ours, pipeline_images(backend, requests, SETTINGS), atol=1e-5, rtol=0)
    other = backend.generate([Request(PROMPT, "green", 0)], SETTINGS)
    assert (other[0] - ours[0]).abs().max() > 1e-3  # the negative prompt steers


def test_flux_negatives_need_true_cfg(tiny_flux_dir):
    flux = load_pipeline(str(tiny_flux_dir), torch.device("cpu"), torch.float32)
    off = GenerationSettings(steps=2, guidance=3.5, true_cfg=1.0)
    rows = []  # images per transformer call
    hook = flux.pipe.transformer.register_forward_pre_hook(lambda _, args, kwargs: rows.append(len(kwargs["hidden_states"])),
                                                           with_kwargs=True)
    first, second = flux.generate([Request(PROMPT, "blurry", 0), Request(PROMPT, "green, square", 0)], off)
    torch.testing.assert_close(first, second, atol=0, rtol=0)  # at true CFG 1 a negative prompt does nothing
    assert rows == [2, 2]  # and is not computed: one call per step, as diffusers makes
    flux.generate([Request(PROMPT, "blurry", 0)], replace(off, true_cfg=2.0))
    hook.remove()
    assert rows[2:] == [2, 2]  # negative and positive
    assert flux.describe(off)["true_cfg"] == 1.0 and flux.describe()["true_cfg"] == 4.0
    with pytest.raises(dpodiff.UsageError, match="--true-cfg 1: at 1 true classifier-free guidance is off"):
        dpodiff.optimize(PROMPT, pipeline=flux, scorer=None, space=space(), true_cfg=1.0)


def test_the_family_is_known_before_the_model_loads(tmp_path, tiny_flux_dir, tiny_sd3_dir, tiny_scorer_dir):
    """Flux's distilled --guidance and its pipeline's defaults apply before loading (the CLI's early checks, bench's
    fingerprint); a guidance of 1 is refused on a family that guides by it."""
    from dpodiff.backends.stable_diffusion import StableDiffusionBackend
    from dpodiff.model_folder import Recommended
    from dpodiff.models import family_of, recommended_before_loading

    assert family_of(str(tiny_flux_dir)) is FluxBackend and family_of(str(tiny_sd3_dir)) is StableDiffusion3Backend
    assert family_of(None) is StableDiffusionBackend  # the shapes world
    assert family_of("someone/a-hub-model") is None and family_of(str(tmp_path)) is None  # loading says what is wrong
    assert recommended_before_loading(str(tiny_flux_dir), FluxBackend) == Recommended(steps=28, guidance=3.5)
    assert recommended_before_loading(None, StableDiffusionBackend) == Recommended(steps=25, guidance=3.0)  # the shapes world's dpodiff.json
    models = ["--scorer", tiny_scorer_dir, "--steps", 2, "--guidance", 1, "--seeds", 1, "--budget", 2]
    code, err = run_cli("improve", PROMPT, "--space", _saved_space(tmp_path), "--out", tmp_path / "flux", "--model", tiny_flux_dir, *models)
    assert code == 0, err
    assert json.loads((tmp_path / "flux" / "result.json").read_text())["generation"]["guidance"] == 1
    code, err = run_cli("improve", PROMPT, "--out", tmp_path / "sd3", "--model", tiny_sd3_dir, *models)
    assert code == 2 and "--guidance 1: at 1 or below classifier-free guidance is off" in err


def _saved_space(folder) -> str:
    path = folder / "space.json"
    space().save(path)
    return str(path)


def test_sd3_with_a_dynamically_shifted_schedule_follows_the_pipeline(tiny_sd3_dir):
    """A scheduler config with use_dynamic_shifting (as some SD3 fine-tunes have) takes its shift from the image size."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sd3 = load_pipeline(str(tiny_sd3_dir), torch.device("cpu"), torch.float32)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=4, max_image_seq_len=64)
    shifted = StableDiffusion3Backend(type(sd3.pipe)(**sd3.pipe.components | {"scheduler": scheduler}))
    requests = [Request(PROMPT, "blurry", 0)]
    torch.testing.assert_close(shifted.generate(requests, SETTINGS), pipeline_images(shifted, requests, SETTINGS), atol=1e-5, rtol=0)
    assert shifted.scheduler(SETTINGS).sigmas[1] != sd3.scheduler(SETTINGS).sigmas[1]


def test_a_noise_prediction_scheduler_is_refused(backend):
    with pytest.raises(dpodiff.UsageError, match="--scheduler ddim .*flow matching.*leave --scheduler out"):
        backend.generate([Request(PROMPT, "", 0)], GenerationSettings(steps=2, scheduler="ddim"))


@pytest.mark.parametrize("algo", ["random", "epo", "gpo", "hybrid"])
def test_every_algorithm_runs(backend, family, tiny_scorer, algo):
    result = dpodiff.optimize(PROMPT, pipeline=backend, scorer=tiny_scorer, space=space(), algorithm=algo, budget=5, seeds=[0, 1],
                              steps=3, guidance=4.0, positive=True, gpo_settings=GPOSettings(iterations=2))
    assert result.evaluations == 5 and result.generation["family"] == family
    assert result.images["best"][0].size == (16, 16)
    assert (result.gpo is not None) == (algo in ("gpo", "hybrid"))


def test_a_side_the_transformer_cannot_draw_exactly_is_refused(backend):
    """SD3 reads 2x2 latent patches and Flux packs its latents in 2x2 patches: a side must be a multiple of twice
    the VAE's factor (16 pixels on the real models), or the image would silently come out smaller. (The CLI refuses
    sides that are not multiples of 8 first, so the tiny models' VAE factor of 2 is checked here directly.)"""
    from dpodiff.errors import UsageError

    multiple = 2 * backend.pipe.vae_scale_factor
    assert backend.size_multiple == multiple
    side = backend.native_size + backend.pipe.vae_scale_factor
    with pytest.raises(UsageError, match=f"--width {side} is not a multiple of {multiple}.*use {side - multiple // 2} or {side + multiple // 2}"):
        backend.check_size(backend.native_size, side)
    backend.check_size(backend.native_size, backend.native_size + multiple)


def test_every_command_takes_the_folder(tmp_path, folder, family, tiny_scorer_dir):
    models = ["--model", folder, "--scorer", tiny_scorer_dir, "--steps", 2, "--guidance", 4, "--seeds", 1]
    space_file = _saved_space(tmp_path)
    for command in ("improve", "attack"):
        extra = ["--min-similarity", 0.5] if command == "attack" else ["--positive", "--algo", "hybrid"]
        code, err = run_cli(command, PROMPT, "--space", space_file, "--budget", 3, "--out", tmp_path / command, *extra, *models)
        assert code == 0, err
        assert json.loads((tmp_path / command / "result.json").read_text())["generation"]["family"] == family
    code, err = run_cli("generate", PROMPT, "--negative-prompt", "blurry", "--true-cfg", 2.5, "--out", tmp_path / "generate", *models)
    assert code == 0, err
    parameters, _ = read_metadata(tmp_path / "generate" / "seed0.png")
    expected = "CFG scale: 2.5, Distilled CFG Scale: 4" if family == "flux" else "CFG scale: 4"
    assert f"Sampler: Euler, Schedule type: Simple, {expected}," in parameters
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPT + "\n")
    code, err = run_cli("bench", prompts, "--algos", "random,gpo", "--budget", 3, "--space", space_file, "--out", tmp_path / "bench", *models)
    assert code == 0, err
