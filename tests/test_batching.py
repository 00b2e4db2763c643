"""Images per sampling run (backends/memory.py): whole candidates by default, the same images whatever the
batch within BATCH_TOLERANCE, and a run that runs out of memory halves its batch and goes on."""

import warnings

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request
from dpodiff.backends.memory import BATCH_TOLERANCE, GIB, MemoryBudget, default_batch_size
from dpodiff.spaces import SearchSpace, Slot
from cli_runner import run_cli

PROMPT = "a red circle above a blue square"
REQUESTS = [Request(PROMPT, negative, seed) for negative in ["", "blurry", "green", "two"] for seed in (0, 1)]


def test_the_default_batch_is_whole_candidates_up_to_16_images_at_512_pixels():
    assert default_batch_size(2, 64 * 64) == 16  # the shapes world: 8 candidates of 2 seeds per call
    assert default_batch_size(3, 64 * 64) == 15  # never a candidate split between calls
    assert default_batch_size(2, 512 * 512) == 16
    assert default_batch_size(2, 768 * 768) == 6  # 16 x 512^2 pixels / 768^2 = 7.1 images: 3 whole candidates
    assert default_batch_size(1, 1024 * 1024) == 4 and default_batch_size(2, 1024 * 1024) == 4
    assert default_batch_size(5, 1024 * 1024) == 5  # one candidate over the budget still goes in one call
    assert default_batch_size(32, 64 * 64) == 32


def test_images_are_the_same_within_the_documented_tolerance_whatever_the_batch(tiny_pipe):
    by_batch = {n: tiny_pipe.generate(REQUESTS, GenerationSettings(steps=3, batch_size=n)) for n in (1, 2, 3, 8)}
    for n, images in by_batch.items():
        torch.testing.assert_close(images, by_batch[2], atol=BATCH_TOLERANCE["pixel"], rtol=0, msg=f"batch {n}")
    assert not torch.equal(by_batch[2][0], by_batch[2][1])  # another seed, another image: the comparison can fail
    assert torch.equal(by_batch[2], tiny_pipe.generate(REQUESTS, GenerationSettings(steps=3, batch_size=2)))


def test_a_search_with_the_default_batch_scores_as_one_candidate_per_call(tiny_pipe, tiny_scorer):
    space = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green", "yellow"]), Slot("quality", ["blurry", "low quality"])])

    def run(**kwargs):
        return dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, space=space, algorithm="random", budget=8,
                                seeds=[0, 1], steps=3, validate=None, **kwargs)

    calls = []
    generate = tiny_pipe.generate
    tiny_pipe.generate = lambda requests, settings: calls.append(len(requests)) or generate(requests, settings)
    try:
        default = run()
    finally:
        del tiny_pipe.generate
    one = run(batch_size=2)
    assert default.generation["batch_size"] == 16 and one.generation["batch_size"] == 2
    assert max(calls) > 2  # several candidates per call
    assert [e.candidate for e in default.history] == [e.candidate for e in one.history]
    for a, b in zip(default.history, one.history):
        assert a.losses == pytest.approx(b.losses, abs=BATCH_TOLERANCE["loss"])


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_pipe):
    """A denoiser that fails above 4 images (8 rows under CFG), as a GPU that is out of memory does."""
    reference = tiny_pipe.generate(REQUESTS, GenerationSettings(steps=3, batch_size=2))
    rows, denoise = [], tiny_pipe.denoise

    def short_of_memory(latents, *args, **kwargs):
        rows.append(latents.shape[0])
        if latents.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return denoise(latents, *args, **kwargs)

    tiny_pipe.denoise = short_of_memory
    try:
        with pytest.warns(UserWarning, match="out of memory making 8 images at once; going on with 4"):
            images = tiny_pipe.generate(REQUESTS, GenerationSettings(steps=3, batch_size=8))
        assert tiny_pipe.memory.cap == 4
        rows.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # learnt: the next run asks no more than fits
            again = tiny_pipe.generate(REQUESTS, GenerationSettings(steps=3, batch_size=8))
        assert set(rows) == {8}
        tiny_pipe.memory.cap = None
        tiny_pipe.denoise = lambda latents, *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
        with pytest.raises(torch.OutOfMemoryError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tiny_pipe.generate(REQUESTS[:2], GenerationSettings(steps=3, batch_size=2))  # one image does not fit: the error
        assert tiny_pipe.memory.cap == 1
    finally:
        del tiny_pipe.denoise
        tiny_pipe.memory = MemoryBudget()
    torch.testing.assert_close(images, reference, atol=BATCH_TOLERANCE["pixel"], rtol=0)
    torch.testing.assert_close(again, reference, atol=BATCH_TOLERANCE["pixel"], rtol=0)


class FakeCuda:
    """torch.cuda's memory counters for a 24 GiB card holding `held` bytes of weights; `run` makes images."""

    def __init__(self, monkeypatch, total=24 * GIB, held=5 * GIB):
        self.total, self.allocated, self.peak = total, held, held
        for name, fn in {"mem_get_info": lambda d=None: (self.total - self.allocated, self.total),
                         "memory_reserved": lambda d=None: self.allocated, "memory_allocated": lambda d=None: self.allocated,
                         "max_memory_allocated": lambda d=None: self.peak, "reset_peak_memory_stats": self.reset}.items():
            monkeypatch.setattr(torch.cuda, name, fn)

    def reset(self, device=None):
        self.peak = self.allocated

    def run(self, budget: MemoryBudget, wanted: int, pixels: int, per_pixel: float) -> int:
        device = torch.device("cuda")
        n = budget.images(wanted, pixels, device)
        with budget.measured(device, n, pixels):
            self.peak = self.allocated + n * pixels * per_pixel
        return n


def test_on_a_gpu_the_batch_is_what_the_free_memory_holds_measured_per_image(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    per_pixel = 4 * GIB / (512 * 512)  # 4 GiB per 512x512 image: SDXL-like
    budget = MemoryBudget()
    assert cuda.run(budget, 16, 512 * 512, per_pixel) == 16  # nothing measured yet: the default
    assert budget.bytes_per_pixel == pytest.approx(per_pixel)
    fits = int(0.9 * 19 * GIB // (4 * GIB))  # 19 GiB free, 10% headroom: 4 images
    assert cuda.run(budget, 16, 512 * 512, per_pixel) == fits == 4
    assert cuda.run(budget, 16, 256 * 256, per_pixel) == 16  # a quarter of the pixels: 17 fit, 16 wanted
    capped = MemoryBudget(max_bytes=int(12 * GIB))
    assert cuda.run(capped, 16, 512 * 512, per_pixel) == 1  # under --max-memory the first run measures on one image
    assert cuda.run(capped, 16, 512 * 512, per_pixel) == 1  # 12 - 5 GiB held: one 4 GiB image
    assert MemoryBudget(max_bytes=int(12 * GIB), bytes_per_pixel=per_pixel / 8).images(16, 512 * 512, torch.device("cuda")) == 14


def test_max_memory_is_checked_and_refused_where_there_is_no_gpu(tmp_path, tiny_model_dir, tiny_scorer_dir):
    models = ["--model", str(tiny_model_dir), "--scorer", str(tiny_scorer_dir), "--steps", "2", "--device", "cpu"]
    code, err = run_cli("generate", PROMPT, "--max-memory", "0", "--out", tmp_path / "zero", *models)
    assert code == 2 and "--max-memory 0: give the GiB" in err
    code, err = run_cli("improve", PROMPT, "--max-memory", "20", "--budget", 3, "--out", tmp_path / "cpu", *models)
    assert code == 2 and "--max-memory caps GPU memory, and this run is on the cpu" in err
    assert not (tmp_path / "cpu" / "result.json").exists()
