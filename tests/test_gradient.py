"""The relaxed prompt and the shortcut text gradient on tiny real models, in float64."""

import json

import pytest
import torch

from dpodiff.backends.relaxed import encode_relaxed, negative_layout, positive_layout, unet_mask
from dpodiff.backends.shortcut import context_and_mask, one_step_loss, sample_until, timesteps
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers.gradient import GPOSettings
from dpodiff.spaces import SearchSpace, Slot, Span

PROMPT = "a red circle above a blue square"


def space() -> SearchSpace:
    # multi-token choices on purpose: "scarlet red", "round thing here", "low quality"
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet red"]), Span(6, 12, ["circle", "disk", "round thing here"])],
        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])],
    )


@pytest.fixture(scope="module")
def pipe64(tiny_model_dir):
    return load_pipeline(str(tiny_model_dir), torch.device("cpu"), torch.float64)


@pytest.fixture(scope="module")
def scorer64(tiny_scorer_dir):
    return ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)


def one_hot(picks, sizes):
    return [torch.nn.functional.one_hot(torch.tensor(k), n).double() for k, n in zip(picks, sizes)]


@pytest.mark.parametrize("picks", [(0, 0, 0, 0), (1, 2, 1, 2), (2, 1, 2, 0)])
def test_one_hot_weights_encode_exactly_the_discrete_prompt(pipe64, picks):
    s = space()
    text, negative = s.render(picks)
    weights = one_hot(picks, s.sizes())
    for layout, w, prompt in ((positive_layout(s, pipe64.tokenizer), weights[:2], text), (negative_layout(s, pipe64.tokenizer), weights[2:], negative)):
        ids = pipe64.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        hidden, presence = encode_relaxed(pipe64.text_encoder, layout, w)
        assert set(presence.unique().tolist()) <= {0.0, 1.0} and presence.sum() == 77
        reference = pipe64.text_encoder(ids)[0][0]
        torch.testing.assert_close(hidden[0][presence[0] == 1], reference, rtol=0, atol=1e-12)


def test_unet_with_presence_mask_matches_the_discrete_prompt(pipe64):
    s = space()
    picks = (2, 2, 1, 2)
    layout = positive_layout(s, pipe64.tokenizer)
    hidden, presence = encode_relaxed(pipe64.text_encoder, layout, one_hot(picks, s.sizes())[:2])
    ids = pipe64.tokenizer(s.render(picks)[0], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    relaxed = pipe64.unet(latents, 500, encoder_hidden_states=hidden, encoder_attention_mask=unet_mask(presence)).sample
    discrete = pipe64.unet(latents, 500, encoder_hidden_states=pipe64.text_encoder(ids)[0]).sample
    torch.testing.assert_close(relaxed, discrete, rtol=0, atol=1e-10)


def finite_difference_check(loss, sizes, eps=1e-6):
    generator = torch.Generator().manual_seed(3)
    logits = [torch.rand(k, generator=generator, dtype=torch.float64).requires_grad_() for k in sizes]
    loss(logits).backward()
    analytic = torch.cat([z.grad for z in logits])
    numeric = []
    for g in range(len(logits)):
        for i in range(len(logits[g])):
            values = []
            for sign in (1, -1):
                shifted = [z.detach().clone() for z in logits]
                shifted[g][i] += sign * eps
                with torch.no_grad():
                    values.append(loss(shifted).item())
            numeric.append((values[0] - values[1]) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert analytic.abs().max() > 1e-6  # the gradient is not trivially zero
    torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("t_index", [0, 2])
def test_shortcut_gradient_matches_finite_differences(pipe64, scorer64, t_index):
    """d(loss)/d(logits) through the relaxed encoding, one UNet step, the x0 estimate, the VAE and CLIP.

    The shortcut treats x_t (sampled without gradient) as a constant, so x_t is sampled once, at the
    logits where the gradient is taken, and held fixed for the finite differences too.
    """
    s = space()
    pos_layout, neg_layout = positive_layout(s, pipe64.tokenizer), negative_layout(s, pipe64.tokenizer)
    target = scorer64.embed_text([PROMPT]).double()
    scheduler = timesteps(pipe64, 4)
    fixed = {}

    def loss(logits):
        w = [torch.softmax(z, 0) for z in logits]
        positive = encode_relaxed(pipe64.text_encoder, pos_layout, w[:2])
        negative = encode_relaxed(pipe64.text_encoder, neg_layout, w[2:])
        context, mask = context_and_mask(negative, positive)
        if "x_t" not in fixed:
            fixed["x_t"] = sample_until(pipe64, scheduler, context, mask, seed=0, t_index=t_index, guidance=7.5)
        return one_step_loss(pipe64, scorer64, scheduler, fixed["x_t"], scheduler.timesteps[t_index], context, mask, target, 7.5)

    finite_difference_check(loss, s.sizes())


def test_no_model_weight_gets_a_gradient(tiny_model_dir, tiny_scorer_dir):
    import dpodiff

    pipe = load_pipeline(str(tiny_model_dir), torch.device("cpu"), torch.float32)
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir))
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, scorer.model):
        module.requires_grad_(True)  # a user's pipeline may come unfrozen
    dpodiff.optimize(PROMPT, pipeline=pipe, scorer=scorer, space=space(), algorithm="gpo", budget=3, seeds=[0], steps=4,
                     gpo_settings=GPOSettings(iterations=2))
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, scorer.model):
        for name, p in module.named_parameters():
            assert not p.requires_grad and p.grad is None, name


def test_t_schedule_is_the_papers_at_50_steps_and_scales():
    settings = GPOSettings()
    assert [settings.t_index(i, 50) for i in range(20)] == [15 + i // 2 for i in range(20)]
    assert [settings.t_index(i, 25) for i in (0, 19)] == [8, 12]


@pytest.mark.parametrize("algo", ["gpo", "hybrid"])
def test_gpo_and_hybrid_end_to_end_and_deterministic(tiny_pipe, tiny_scorer, algo):
    import dpodiff

    def run():
        return dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, space=space(), algorithm=algo, budget=8,
                                seeds=[0, 1], steps=4, positive=True, gpo_settings=GPOSettings(iterations=4))

    a, b = run(), run()
    assert a.evaluations == 8 and a.history[0] is a.original
    assert [e.prompt + "|" + e.negative_prompt for e in a.history] == [e.prompt + "|" + e.negative_prompt for e in b.history]
    assert a.gpo["losses"] == b.gpo["losses"] and len(a.gpo["losses"]) == 4
    assert a.gpo["t"] == [1, 1, 1, 1]  # round(4 * (15 + i // 2) / 50)
    assert a.gpo["equivalent_image_evaluations"] == pytest.approx(4 * 2 / 4)
    assert all(abs(sum(p) - 1) < 1e-9 for p in a.gpo["probabilities"])
    if algo == "gpo":  # the argmax of the learned distribution is the first candidate after the original
        argmax = [max(range(len(p)), key=p.__getitem__) for p in a.gpo["probabilities"]]
        assert a.history[1].candidate == argmax or argmax == [0, 0, 0, 0]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_clean_latent_inverts_the_forward_process(prediction_type):
    from diffusers import DDIMScheduler

    from dpodiff.backends.shortcut import clean_latent

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type)
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 1, 4, 8, 8, generator=generator, dtype=torch.float64)
    t = 601
    a = scheduler.alphas_cumprod[t].double()
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    output = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}[prediction_type]
    torch.testing.assert_close(clean_latent(scheduler, x_t, output, t), x0)
