"""The relaxed prompt and the shortcut text gradient on tiny real models, in float64."""


import pytest
import torch

from dpodiff.backends.relaxed import RelaxedEncoder, negative_layout, positive_layout, unet_mask
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers.gradient import GPOSettings
from dpodiff.spaces import SearchSpace, Slot, Span
from dpodiff.testing import check_shortcut_gradient, one_hot

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


@pytest.mark.parametrize("picks", [(0, 0, 0, 0), (1, 2, 1, 2), (2, 1, 2, 0)])
def test_one_hot_weights_encode_exactly_the_discrete_prompt(pipe64, picks):
    s = space()
    text, negative = s.render(picks)
    weights = one_hot(picks, s.sizes())
    encoder = pipe64.pipe.text_encoder
    for layout, w, prompt in ((positive_layout(s, pipe64.tokenizer), weights[:2], text), (negative_layout(s, pipe64.tokenizer), weights[2:], negative)):
        ids = pipe64.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        encoding = RelaxedEncoder(encoder, layout)(w)
        presence = encoding.presence
        assert set(presence.unique().tolist()) <= {0.0, 1.0} and presence.sum() == 77
        reference = encoder(ids)
        torch.testing.assert_close(encoding.hidden[0][presence[0] == 1], reference[0][0], rtol=0, atol=1e-12)
        torch.testing.assert_close(encoding.pooled, reference.pooler_output, rtol=0, atol=1e-12)


def test_unet_with_presence_mask_matches_the_discrete_prompt(pipe64):
    s = space()
    picks = (2, 2, 1, 2)
    layout = positive_layout(s, pipe64.tokenizer)
    encoding = RelaxedEncoder(pipe64.pipe.text_encoder, layout)(one_hot(picks, s.sizes())[:2])
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    unet = pipe64.pipe.unet
    relaxed = unet(latents, 500, encoder_hidden_states=encoding.hidden, encoder_attention_mask=unet_mask(encoding.presence)).sample
    discrete = unet(latents, 500, encoder_hidden_states=pipe64.encode([s.render(picks)[0]]).hidden).sample
    torch.testing.assert_close(relaxed, discrete, rtol=0, atol=1e-10)


@pytest.mark.parametrize("t_index", [0, 2])
def test_shortcut_gradient_matches_finite_differences(pipe64, scorer64, t_index):
    """d(loss)/d(logits) through the relaxed encoding, one UNet step, the x0 estimate, the VAE and CLIP."""
    check_shortcut_gradient(pipe64, scorer64, space(), t_index)


def test_checkpointing_gives_the_same_gradient_and_saves_less_for_backward(pipe64, scorer64):
    """GPO's gradient checkpointing (Backend.checkpointed) recomputes the UNet's and the VAE's blocks in the
    backward pass: the same gradient, fewer bytes held for backward; and it is off again afterwards."""
    from dpodiff.backends import GenerationSettings
    from dpodiff.backends.shortcut import shortcut_loss

    relaxed = pipe64.relaxed_encoders(space(), True, True)
    target = scorer64.target(PROMPT).double()
    noise = pipe64.initial_noise(0)

    def gradient(checkpointed: bool) -> tuple[torch.Tensor, int]:
        logits = [torch.zeros(k, dtype=torch.float64, requires_grad=True) for k in space().sizes()]
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), pipe64.checkpointed(checkpointed):
            loss = shortcut_loss(pipe64, scorer64, relaxed([torch.softmax(z, 0) for z in logits]), target, noise, 0, 1,
                                 GenerationSettings(4, 7.5))
            loss.backward()
        return torch.cat([z.grad for z in logits]), sum(storages.values())

    plain, plain_bytes = gradient(False)
    ckpt, ckpt_bytes = gradient(True)
    assert plain.abs().max() > 0
    torch.testing.assert_close(ckpt, plain, rtol=1e-9, atol=1e-12)
    assert ckpt_bytes < 0.8 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert not pipe64.pipe.unet.is_gradient_checkpointing and not pipe64.pipe.vae.is_gradient_checkpointing
    assert GPOSettings().checkpoints(torch.device("cuda")) and not GPOSettings().checkpoints(torch.device("cpu"))
    assert GPOSettings(checkpointing="on").checkpoints(torch.device("cpu"))


def test_no_model_weight_gets_a_gradient(tiny_model_dir, tiny_scorer_dir):
    import dpodiff

    pipe = load_pipeline(str(tiny_model_dir), torch.device("cpu"), torch.float32)
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir))
    for module in (*pipe.modules, scorer.model):
        module.requires_grad_(True)  # a user's pipeline may come unfrozen
    dpodiff.optimize(PROMPT, pipeline=pipe, scorer=scorer, space=space(), algorithm="gpo", budget=3, seeds=[0], steps=4,
                     gpo_settings=GPOSettings(iterations=2))
    for module in (*pipe.modules, scorer.model):
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
    assert a.gpo["equivalent_images_formula"] == pytest.approx(4 * 2 / 4 * 2)  # both seeds every iteration
    assert a.gpo["seconds_per_image"] > 0 and a.gpo["equivalent_images_measured"] == pytest.approx(sum(a.gpo["seconds"]) / a.gpo["seconds_per_image"])
    assert all(abs(sum(p) - 1) < 1e-9 for p in a.gpo["probabilities"])
    if algo == "gpo":  # the argmax of the learned distribution is the first candidate after the original
        argmax = [max(range(len(p)), key=p.__getitem__) for p in a.gpo["probabilities"]]
        assert argmax != [0, 0, 0, 0] and a.history[1].candidate == argmax  # GPO moved off the original here




def test_every_seed_each_iteration_is_the_gradient_of_the_mean_loss():
    """learn_logits with parts: one Gumbel sample per iteration, each part's backward accumulated, gives the
    same logits as one backward of the mean loss (the paper's average over seeds), and another than one part."""
    from dpodiff.optimizers.gradient import learn_logits

    sizes, costs = [3, 2], [torch.tensor([0.3, -0.2, 0.5, 0.1, -0.4]), torch.tensor([-0.6, 0.4, 0.2, -0.3, 0.7])]
    settings = GPOSettings(iterations=3, grad_clip=10.0)

    def part_loss(weights, iteration, part):
        return (torch.cat(weights) * costs[part]).sum() ** 2

    def mean_loss(weights, iteration, part):
        return (part_loss(weights, iteration, 0) + part_loss(weights, iteration, 1)) / 2

    by_parts, trace = learn_logits(part_loss, sizes, settings, seed=3, parts=2)
    by_mean, mean_trace = learn_logits(mean_loss, sizes, settings, seed=3)
    first_only, _ = learn_logits(part_loss, sizes, settings, seed=3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(by_parts, by_mean))
    assert trace.losses == pytest.approx(mean_trace.losses)
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(by_parts, first_only))


@pytest.mark.parametrize("task_name", ["improve", "attack"])
def test_gpo_learns_the_best_choice_of_each_gene_on_a_toy_objective(task_name):
    """learn_logits with the paper's settings (RMSprop, lr 0.1, gradients clipped to ±0.025, logits kept in
    [0, 3], starting at 1 for the original and 0 elsewhere), minimising the task's signed loss as run_gpo
    does: improve's logits move to each gene's lowest-loss choice, attack's (the sign flipped) to the highest."""
    from dpodiff.optimizers.gradient import initial_logits, learn_logits
    from dpodiff.tasks import make_task

    sign = make_task(task_name, False).sign
    sizes = [3, 4]
    costs = torch.tensor([0.5, 0.2, 0.9, 0.3, 0.8, 0.1, 0.6])  # gene 0: choice 1 lowest, 2 highest; gene 1: 2 lowest, 1 highest
    settings = GPOSettings(iterations=40)

    def loss(weights, iteration, part):
        return sign * (torch.cat(weights) * costs).sum()

    untrained, _ = learn_logits(loss, sizes, GPOSettings(iterations=0))
    assert torch.equal(torch.cat(untrained), initial_logits(sizes).detach().double())  # the original leads at first
    logits, trace = learn_logits(loss, sizes, settings, seed=1)
    best = [1, 2] if task_name == "improve" else [2, 1]
    assert [int(z.argmax()) for z in logits] == best
    assert all(((z >= 0) & (z <= 3)).all() for z in logits)
    assert [z[b].item() for z, b in zip(logits, best)] == pytest.approx([3.0, 3.0])  # pushed to the upper bound
    def expected(z):  # the signed loss expected under softmax(logits)
        return sign * sum(float(torch.softmax(g, 0) @ c.double()) for g, c in zip(z, costs.split(sizes)))

    assert expected(logits) < expected(untrained) - 0.3
    one_step, _ = learn_logits(lambda w, i, p: 1e6 * loss(w, i, p), sizes, GPOSettings(iterations=1), seed=1)
    assert (torch.cat(one_step) - torch.cat(untrained)).abs().max() <= 0.1 * 1.0001 / (1 - 0.99) ** 0.5  # RMSprop's first step is bounded whatever the scale
