"""Every tensor GPO creates lives on the models' device.

On a CPU-only machine the models go to the `meta` device: any tensor our code made on the CPU and
mixed with theirs raises. (Diffusers' own schedulers index CPU tables with device timesteps, which
meta cannot do, so the step runs at the first position of a CPU ladder; sampling is diffusers' code.)
With CUDA, the whole of GPO and hybrid runs there.
"""

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings
from dpodiff.backends.schedulers import fresh_scheduler, noise_levels
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers import GPOSettings
from dpodiff.optimizers.gradient import gumbel_weights, initial_logits
from dpodiff.spaces import SearchSpace, Slot, Span

PROMPT = "a red circle above a blue square"
SPACE = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "scarlet red"])],
                    negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])])


@pytest.mark.parametrize("family", ["tiny_model_dir", "tiny_sdxl_dir"])
def test_a_gpo_step_creates_no_tensor_off_the_models_device(request, family, tiny_scorer_dir):
    backend = load_pipeline(str(request.getfixturevalue(family)), torch.device("cpu"), torch.float32)
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir))
    target = scorer.embed_text([PROMPT])
    backend.pipe.to("meta")
    scorer.model.to("meta")
    sizes = SPACE.sizes()
    logits = initial_logits(sizes, backend.device)
    cond = backend.relaxed_encoders(SPACE, positive=True, negative=True)(gumbel_weights(logits, sizes, torch.Generator().manual_seed(0), 1.0))
    scheduler = fresh_scheduler(backend.own_scheduler, 4)  # on the CPU: a meta scheduler has no sigmas to read
    latents = backend.initial_noise(0) * scheduler.init_noise_sigma
    x0 = backend.guided_x0(scheduler, 0, noise_levels(scheduler)[0], latents, cond, GenerationSettings(steps=4))
    loss = scorer.loss(backend.decode(x0), target.to(backend.device)).mean()
    loss.backward()
    assert backend.device.type == "meta" and loss.device.type == "meta" and logits.grad.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", ["tiny_model_dir", "tiny_sdxl_dir"])
@pytest.mark.parametrize("algo", ["gpo", "hybrid"])
def test_gpo_and_hybrid_run_on_cuda(request, family, algo, tiny_scorer_dir):
    from dpodiff.models import load_models

    backend, scorer, _ = load_models(str(request.getfixturevalue(family)), str(tiny_scorer_dir), "cuda", "float16")
    result = dpodiff.optimize(PROMPT, pipeline=backend, scorer=scorer, space=SPACE, algorithm=algo, budget=4, seeds=[0, 1], steps=4,
                              positive=True, gpo_settings=GPOSettings(iterations=3))
    assert result.evaluations == 4 and len(result.gpo["losses"]) == 3
    assert all(torch.isfinite(torch.tensor(e.losses)).all() for e in result.history)
