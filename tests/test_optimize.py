"""optimize() end to end on tiny real models: the library call a notebook user makes."""

import copy
import json

import pytest

import dpodiff
from dpodiff.errors import UsageError
from dpodiff.spaces import SearchSpace, Slot, Span

PROMPT = "a red circle above a blue square"


def space() -> SearchSpace:
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet"]), Span(6, 12, ["circle", "disk", "round shape"])],
        negative=[Slot("red", ["blue", "green", "yellow"]), Slot("circle", ["square", "triangle"]), Slot("quality", ["blurry", "low quality"])],
    )


def run(tiny_pipe, tiny_scorer, **kwargs):
    options = dict(task="improve", space=space(), algorithm="epo", budget=12, seeds=[0, 1], steps=3, validate=None)  # the search alone
    options.update(kwargs)
    return dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, **options)


def test_improve_searches_only_the_negative_prompt(tiny_pipe, tiny_scorer):
    result = run(tiny_pipe, tiny_scorer)
    assert result.evaluations == 12 and result.stop_reason == "budget"
    assert result.original.prompt == PROMPT and result.original.negative_prompt == ""
    assert result.history[0] is result.original
    assert all(e.prompt == PROMPT for e in result.history)  # without positive=True the prompt is never changed
    assert len({e.negative_prompt for e in result.history}) == 12  # never scored twice
    assert result.best.loss == min(e.loss for e in result.history)
    assert [e.loss for e in result.top(5)] == sorted(e.loss for e in result.history)[:5]
    for e in result.history:
        assert e.loss == pytest.approx(sum(e.losses) / 2) and len(e.losses) == 2
    assert len(result.images["original"]) == len(result.images["best"]) == 2


def test_positive_variant_also_substitutes_synonyms(tiny_pipe, tiny_scorer):
    result = run(tiny_pipe, tiny_scorer, positive=True, budget=15)
    assert any(e.prompt != PROMPT for e in result.history)
    assert any(e.negative_prompt for e in result.history)


def test_same_seeds_same_losses_bit_for_bit(tiny_pipe, tiny_scorer):
    a = run(tiny_pipe, tiny_scorer, budget=6)
    b = run(tiny_pipe, tiny_scorer, budget=6)
    assert [e.losses for e in a.history] == [e.losses for e in b.history]
    assert [e.negative_prompt for e in a.history] == [e.negative_prompt for e in b.history]


def test_attack_maximises_under_the_constraint(tiny_pipe, tiny_scorer):
    result = run(tiny_pipe, tiny_scorer, task="attack", budget=9, min_similarity=0.7)
    assert all(e.negative_prompt == "" for e in result.history)
    assert all(e.similarity >= 0.7 for e in result.history)
    assert all(r.similarity < 0.7 for r in result.rejections)
    assert result.best.loss == max(e.loss for e in result.history)
    scored = {e.prompt for e in result.history}
    assert not scored & {r.prompt for r in result.rejections}
    data = result.to_dict()
    assert data["rejected"] == len(result.rejections) and data["constraint"]["min_similarity"] == 0.7


def test_interrupt_returns_partial_result(tiny_pipe, tiny_scorer):
    def stop_after_three(evaluation, result):
        if len(result.history) == 3:
            raise KeyboardInterrupt

    result = run(tiny_pipe, tiny_scorer, on_evaluation=stop_after_three)
    assert result.stop_reason == "interrupted" and result.evaluations == 3


def test_result_json_has_everything(tiny_pipe, tiny_scorer, tmp_path):
    result = run(tiny_pipe, tiny_scorer, budget=5)
    result.save(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    for key in ("task", "prompt", "model", "scorer", "algorithm", "algorithm_settings", "seeds", "evaluations", "original", "top", "history", "timings"):
        assert key in data, key
    assert data["algorithm_settings"]["population"] == 20 and data["algorithm_settings"]["mutation_prob"] == 0.1
    assert data["image_evaluations"] == 10
    assert [h["index"] for h in data["history"]] == list(range(5))
    assert SearchSpace.from_dict(data["space"]).to_dict() == space().to_dict()
    for name in ("original_seed0.png", "original_seed1.png", "best_seed0.png", "best_seed1.png", "grid.png"):
        assert (tmp_path / name).is_file()


def test_bad_library_input(tiny_pipe, tiny_scorer):
    with pytest.raises(UsageError, match="budget"):
        run(tiny_pipe, tiny_scorer, budget=0)
    with pytest.raises(UsageError, match="not known"):
        run(tiny_pipe, tiny_scorer, algorithm="annealing")
    with pytest.raises(UsageError, match="repeats a seed"):
        run(tiny_pipe, tiny_scorer, seeds=[1, 1])
    with pytest.raises(UsageError, match="nothing to search"):
        run(tiny_pipe, tiny_scorer, space=SearchSpace(PROMPT))
    with pytest.raises(UsageError, match="built for"):
        dpodiff.optimize("a green triangle", pipeline=tiny_pipe, scorer=tiny_scorer, space=space(), budget=3, steps=2)


def test_batching_candidates_together_gives_the_same_losses(tiny_pipe, tiny_scorer):
    one = run(tiny_pipe, tiny_scorer, budget=8)
    batched = run(tiny_pipe, tiny_scorer, budget=8, batch_size=6)  # 3 candidates x 2 seeds per pipeline call
    assert [e.candidate for e in one.history] == [e.candidate for e in batched.history]
    for a, b in zip(one.history, batched.history):
        assert a.losses == pytest.approx(b.losses, abs=1e-4)


def test_a_space_over_the_window_is_fitted_and_recorded(tiny_pipe, tiny_scorer, tmp_path):
    """30 library slots of 3-token terms ("worst quality,") overflow the 77-token window: library slots go first,
    every scored negative prompt fits, and result.json says what was dropped."""
    library = [Slot(f"nplib:{i}", ["worst quality", "low resolution", "bad anatomy"], "nplib") for i in range(30)]
    big = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green"])] + library)
    result = run(tiny_pipe, tiny_scorer, space=big, budget=6, algorithm="random")
    dropped = result.fit["dropped"]
    assert dropped and all(d["name"].startswith("nplib:") for d in dropped)
    assert result.fit["negative_tokens_before"] > 77 >= result.fit["negative_tokens_after"]
    kept = {s["name"] for s in result.space["negative"]}
    assert "red" in kept and not kept & {d["name"] for d in dropped}
    assert all(len(tiny_pipe.tokenizer(e.negative_prompt).input_ids) <= 77 for e in result.history)
    result.save(tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["fit"]["dropped"] == dropped


def test_the_run_configuration_is_recorded(tiny_pipe, tiny_scorer):
    own = tiny_pipe.pipe.scheduler
    result = run(tiny_pipe, tiny_scorer, budget=3, scheduler="euler")
    assert result.config["scheduler"] == "euler" and result.config["seeds"] == [0, 1] and result.config["algorithm"] == "epo"
    assert tiny_pipe.pipe.scheduler is own and type(own).__name__ == "DDIMScheduler"  # the caller's pipeline keeps its own


def interrupting_backend(tiny_pipe, on_call: int):
    """A copy of the tiny model's backend (the session's own stays as it is), whose `on_call`-th generate()
    (one pipeline call of a batch) is hit by Ctrl-C."""
    from dpodiff.backends import as_backend

    backend = copy.copy(as_backend(tiny_pipe))
    generate, calls = backend.generate, []

    def interrupted(requests, settings):
        calls.append(len(requests))
        if len(calls) == on_call:
            raise KeyboardInterrupt
        return generate(requests, settings)

    backend.generate = interrupted
    return backend, calls


def test_interrupt_inside_a_pipeline_call_keeps_the_earlier_chunks_of_its_batch(tiny_pipe, tiny_scorer, tmp_path):
    """batch_size 4 = 2 candidates x 2 seeds per pipeline call. Call 1 scores the original; EPO's first batch (11 candidates)
    then takes calls 2, 3, ...; Ctrl-C in call 4 keeps the original and the 4 candidates of calls 2 and 3."""
    reference = run(tiny_pipe, tiny_scorer, batch_size=4)
    backend, calls = interrupting_backend(tiny_pipe, on_call=4)
    result = run(backend, tiny_scorer, batch_size=4)
    assert calls == [2, 4, 4, 4]  # the batch goes one pipeline call at a time, as the backend batched it before
    assert result.stop_reason == "interrupted" and result.evaluations == 5
    assert [e.candidate for e in result.history] == [e.candidate for e in reference.history[:5]]
    assert [e.losses for e in result.history] == [e.losses for e in reference.history[:5]]
    assert result.best.loss == min(e.loss for e in result.history) and len(result.images["best"]) == 2
    result.save(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["stop_reason"] == "interrupted" and [h["index"] for h in data["history"]] == list(range(5))
    assert [h["candidate"] for h in data["history"]] == [e.candidate for e in reference.history[:5]]


def test_interrupt_in_a_call_that_straddles_candidates(tiny_pipe, tiny_scorer):
    """batch_size 3 with 2 seeds: a candidate's images span two calls; those of a candidate cut off are dropped."""
    backend, calls = interrupting_backend(tiny_pipe, on_call=4)  # calls: original (2 images), then 3, 3, [3]
    result = run(backend, tiny_scorer, batch_size=3)
    assert calls == [2, 3, 3, 3] and result.stop_reason == "interrupted"
    assert result.evaluations == 1 + 3  # 6 images of the batch made before the interrupt: 3 whole candidates


def test_interrupt_from_the_callback_mid_batch_tells_the_search_what_was_scored(tiny_pipe, tiny_scorer):
    seen = []

    def stop_at_seven(evaluation, result):
        seen.append(evaluation)
        if len(result.history) == 7:  # the 6th candidate of EPO's first batch of 11
            raise KeyboardInterrupt

    result = run(tiny_pipe, tiny_scorer, on_evaluation=stop_at_seven, batch_size=4)
    assert result.stop_reason == "interrupted" and result.history == seen and result.evaluations == 7


def test_run_search_tells_the_optimiser_the_scored_part_of_an_interrupted_batch():
    from dpodiff.optimizers import make_optimizer
    from dpodiff.search import BatchInterrupted, run_search

    told = []
    optimizer = make_optimizer("random", [4, 4, 4], seed=0)
    tell = optimizer.tell
    optimizer.tell = lambda candidate, value: (told.append(candidate), tell(candidate, value))

    def objective(candidates):
        if len(candidates) == 1:
            return [1.0]
        raise BatchInterrupted([0.5, 0.25])  # Ctrl-C after two candidates of the batch were scored

    outcome = run_search(optimizer, (0, 0, 0), objective, budget=20)
    assert outcome.stop_reason == "interrupted" and outcome.evaluated == 3 and len(told) == 3


def test_the_cli_says_how_many_candidates_an_interrupt_kept(tiny_model_dir, tiny_scorer_dir, tmp_path, monkeypatch):
    from dpodiff.backends import Backend
    from cli_runner import run_cli

    generate, calls = Backend.generate, []

    def interrupted(self, requests, settings):
        calls.append(len(requests))
        if len(calls) == 4:  # Ctrl-C in the third call of EPO's first batch: the original and 4 candidates are kept
            raise KeyboardInterrupt
        return generate(self, requests, settings)

    monkeypatch.setattr(Backend, "generate", interrupted)
    space_file = tmp_path / "space.json"
    space().save(space_file)
    out = tmp_path / "run"
    code, err = run_cli("improve", PROMPT, "--space", space_file, "--budget", 12, "--seeds", 2, "--batch-size", 4, "--steps", 2,
                        "--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--out", out)
    assert code == 130, err
    assert "Interrupted: 5 candidates scored, saved in" in " ".join(err.split())
    assert json.loads((out / "result.json").read_text())["evaluations"] == 5


def test_protocol_paper(tiny_pipe, tiny_scorer):
    """The reference's choices: uniform sampling, the plain arg-min, the original outside the budget, GPO's 32 samples
    whatever the budget, and the hybrid's first generation led by GPO's argmax."""
    from dpodiff.optimizers import GPOSettings

    result = run(tiny_pipe, tiny_scorer, algorithm="random", budget=6, protocol="paper", validate=(2, 2))
    assert result.evaluations == 7 and result.selection is None and result.config["sampling"] == "uniform"
    assert result.best.loss == min(e.loss for e in result.history)
    hybrid = run(tiny_pipe, tiny_scorer, algorithm="hybrid", budget=4, protocol="paper", gpo_settings=GPOSettings(iterations=2))
    argmax = [max(range(len(p)), key=p.__getitem__) for p in hybrid.gpo["probabilities"]]
    assert hybrid.evaluations == 5 and hybrid.algorithm_settings["first"] == argmax
    assert argmax != [0, 0, 0] and hybrid.history[1].candidate == argmax  # GPO moved off the original here
    gpo = run(tiny_pipe, tiny_scorer, algorithm="gpo", budget=4, protocol="paper", gpo_settings=GPOSettings(iterations=2), steps=2)
    assert gpo.evaluations == 33
    with pytest.raises(UsageError, match="--protocol"):
        run(tiny_pipe, tiny_scorer, protocol="reference")
