"""The settings inside every PNG dpodiff writes (A1111 `parameters` and the `dpodiff` JSON), and `dpodiff inspect`."""

import json

import pytest
from PIL import Image

from dpodiff.defaults import SCHEDULERS
from dpodiff.errors import UsageError
from dpodiff.files import save_image
from dpodiff.report.metadata import (
    A1111_SAMPLERS,
    ImageInfo,
    format_parameters,
    parse_parameters,
    read_metadata,
)
from cli_runner import run_cli

PROMPT = "a red circle above a blue square"


def make_info(**changes) -> ImageInfo:
    fields = {"prompt": PROMPT, "negative_prompt": "green, blurry", "steps": 50, "scheduler": "euler_ancestral", "guidance": 7.5,
              "seed": 1234, "width": 64, "height": 48, "model": "runwayml/stable-diffusion-v1-5",
              "parameters": {"Scorer": "clip", "Loss": 0.7312}, "extra": {"role": "best", "loss": 0.73121, "config": {"steps": 50, "seeds": [1234]}}}
    return ImageInfo(**{**fields, **changes})


def test_round_trip(tmp_path):
    path = save_image(tmp_path / "a.png", Image.new("RGB", (64, 48), "red"), make_info())
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # written atomically, no temporary left
    text, data = read_metadata(path)
    assert text == ("a red circle above a blue square\nNegative prompt: green, blurry\n"
                    "Steps: 50, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 64x48, Model: runwayml/stable-diffusion-v1-5, "
                    "Scorer: clip, Loss: 0.7312")
    assert Image.open(path).info["parameters"] == text  # where A1111 and ComfyUI look
    assert data == {"prompt": PROMPT, "negative_prompt": "green, blurry", "seed": 1234, "role": "best", "loss": 0.73121,
                    "config": {"steps": 50, "seeds": [1234]}}
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == PROMPT and parsed["Negative prompt"] == "green, blurry"
    assert (parsed["Steps"], parsed["Sampler"], parsed["CFG scale"], parsed["Seed"], parsed["Size"]) == ("50", "Euler a", "7.5", "1234", "64x48")
    # text outside Latin-1 goes into an iTXt chunk and comes back the same; a NaN loss is left out / null
    info = make_info(prompt="一只红色的猫", negative_prompt="", parameters={"Loss": float("nan")}, extra={"loss": float("nan")})
    text, data = read_metadata(save_image(tmp_path / "b.png", Image.new("RGB", (8, 8)), info))
    assert text.startswith("一只红色的猫\nSteps: 50") and "Loss" not in text and data["loss"] is None
    save_image(tmp_path / "c.png", Image.new("RGB", (8, 8)))  # no info: no chunks
    assert read_metadata(tmp_path / "c.png") == (None, None)


def test_values_are_quoted_as_a1111_quotes_them():
    info = make_info(negative_prompt="", model="C:\\models\\sd15", parameters={"Note": 'say "hi", then: go', "Empty": "", "Nothing": None})
    last = format_parameters(info).split("\n")[-1]
    assert 'Model: sd15' in last  # a local folder by its name only
    assert 'Note: "say \\"hi\\", then: go"' in last and "Empty" not in last and "Nothing" not in last
    assert parse_parameters(format_parameters(info))["Note"] == 'say "hi", then: go'
    assert format_parameters(make_info(model="/home/me/weights/shapes-sd")).split("\n")[-1].endswith("Model: shapes-sd, Scorer: clip, Loss: 0.7312")
    with pytest.raises(ValueError):
        format_parameters(make_info(parameters={"Bad:key": 1}))


def test_every_scheduler_has_an_a1111_sampler_name():
    assert set(SCHEDULERS) <= set(A1111_SAMPLERS)
    assert "Sampler: DPM++ 2M," in format_parameters(make_info(scheduler="dpm_multistep"))
    assert "Sampler: PLMS," in format_parameters(make_info(scheduler="pndm"))
    assert "Sampler: Euler, Schedule type: Simple, CFG scale" in format_parameters(make_info(scheduler="FlowMatchEulerDiscreteScheduler"))
    assert "Sampler: LCMScheduler," in format_parameters(make_info(scheduler="LCMScheduler"))


def test_parsing_follows_a1111_rules():
    # an infotext as A1111 writes it: multi-line prompt and negative prompt, quoted values holding commas and colons
    text = ("masterpiece, a cat\nwearing a hat\nNegative prompt: ugly, (blurry:1.2)\nbad hands\n"
            'Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 965400086, Size: 512x768, Model hash: 45dee52b, '
            'Lora hashes: "add_detail: 7c6bad76eb54, more: 1", Hires upscaler: Latent, Version: v1.9.0')
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == "masterpiece, a cat\nwearing a hat"
    assert parsed["Negative prompt"] == "ugly, (blurry:1.2)\nbad hands"
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54, more: 1"
    assert (parsed["Steps"], parsed["Size"], parsed["Hires upscaler"], parsed["Version"]) == ("20", "512x768", "Latent", "v1.9.0")
    # no negative prompt
    parsed = parse_parameters("a dog\nSteps: 20, Sampler: Euler, Seed: 3")
    assert parsed["Prompt"] == "a dog" and parsed["Negative prompt"] == "" and parsed["Seed"] == "3"
    # a last line with fewer than 3 pairs belongs to the prompt
    parsed = parse_parameters("a portrait\nstyle: oil, mood: calm")
    assert parsed["Prompt"] == "a portrait\nstyle: oil, mood: calm" and "style" not in parsed
    # our own multi-line prompt comes back as written
    info = make_info(prompt="line one\nline two", negative_prompt="neg one\nneg two")
    parsed = parse_parameters(format_parameters(info))
    assert (parsed["Prompt"], parsed["Negative prompt"], parsed["Model"]) == ("line one\nline two", "neg one\nneg two", info.model)


def test_read_metadata_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_metadata(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UsageError, match="not a PNG"):
        read_metadata(tmp_path / "notes.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    with pytest.raises(UsageError, match="JPEG image, not a PNG"):
        read_metadata(tmp_path / "photo.jpg")


@pytest.fixture
def models(tiny_model_dir, tiny_scorer_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--scorer", str(tiny_scorer_dir), "--steps", "2"]


def test_generate_writes_settings_that_inspect_shows(tmp_path, models, capsys):
    out = tmp_path / "gen"
    code, err = run_cli("generate", PROMPT, "--negative-prompt", "green, blurry", "--seeds", "3,5", "--guidance", 4, "--out", out, *models)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    for record in result["images"]:
        text, data = read_metadata(out / record["file"])
        parsed = parse_parameters(text)
        assert (parsed["Prompt"], parsed["Negative prompt"]) == (PROMPT, "green, blurry")
        assert (parsed["Seed"], parsed["Steps"], parsed["CFG scale"], parsed["Sampler"]) == (str(record["seed"]), "2", "4", "DDIM")
        assert parsed["Size"] == "{0}x{0}".format(Image.open(out / record["file"]).width)
        assert (data["seed"], data["prompt"], data["negative_prompt"], data["role"]) == (record["seed"], PROMPT, "green, blurry", "generated")
        assert data["loss"] == record["loss"] and data["config"] == result["config"] and data["generation"] == result["generation"]
    assert read_metadata(out / "grid.png") == (None, None)  # several seeds in one picture: no single image's settings
    capsys.readouterr()

    code, err = run_cli("inspect", out / "seed5.png")
    shown = capsys.readouterr().out
    assert code == 0, err
    assert PROMPT in shown and "Negative prompt: green, blurry" in shown and "Seed: 5" in shown and '"role": "generated"' in shown
    code, err = run_cli("inspect", out / "seed5.png", "--json")
    assert code == 0, err
    printed = json.loads(capsys.readouterr().out)
    assert printed["parameters"]["Seed"] == "5" and printed["dpodiff"]["seed"] == 5 and printed["text"].startswith(PROMPT)
    for bad, message in ((out / "grid.png", "no generation settings"), (out / "nothing.png", "does not exist"), (out / "result.json", "not a PNG")):
        code, err = run_cli("inspect", bad)
        assert code == 2 and message in err, err


def test_improve_best_images_carry_the_best_negative_prompt_and_loss(tmp_path, models):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({PROMPT: {"synonym": {"red": ["crimson"]}, "antonym": {"red": ["blue", "green"], "circle": ["square"]},
                                               "keywords": ["red", "circle"]}}))
    out = tmp_path / "run"
    code, err = run_cli("improve", PROMPT, "--space", space, "--budget", 4, "--seeds", "0,2", "--out", out, *models)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    for role in ("original", "best"):
        for i, seed in enumerate(result["seeds"]):
            text, data = read_metadata(out / f"{role}_seed{seed}.png")
            parsed = parse_parameters(text)
            assert (data["role"], data["seed"], data["negative_prompt"]) == (role, seed, result[role]["negative_prompt"])
            assert data["loss"] == result[role]["losses"][i] and data["config"] == result["config"]
            assert parsed["Negative prompt"] == result[role]["negative_prompt"] and parsed["Seed"] == str(seed)
            assert float(parsed["Loss"]) == pytest.approx(result[role]["losses"][i], abs=5e-5) and parsed["Role"] == role


def test_inspect_escapes_what_could_rewrite_the_terminal(tmp_path, capsys):
    info = make_info(prompt="a cat\x1b[2J[bold]", negative_prompt="", extra={"note": "\x1b]0;owned\x07 \u202e"})
    save_image(tmp_path / "evil.png", Image.new("RGB", (8, 8)), info)
    code, err = run_cli("inspect", tmp_path / "evil.png")
    shown = capsys.readouterr().out
    assert code == 0, err
    assert "\x1b" not in shown and "\u202e" not in shown and "\\x1b[2J[bold]" in shown and "\\u001b]0;owned" in shown


def test_the_shipped_shapes_world_is_named_by_its_release_not_its_folder():
    from dpodiff.report.metadata import model_label
    from dpodiff.shapes import PIPELINE_DIR, RELEASE, SCORER_DIR

    assert model_label(str(PIPELINE_DIR)) == f"shapes-world-r{RELEASE}" and model_label(f"clip:{SCORER_DIR}").startswith("shapes-world-scorer")
    assert model_label("/home/me/models/sd15") == "sd15" and model_label("stabilityai/sdxl") == "stabilityai/sdxl"


def test_generates_record_holds_only_what_generate_used(tmp_path, tiny_model_dir, tiny_scorer_dir):
    code, err = run_cli("generate", PROMPT, "--seeds", 1, "--steps", 2, "--out", tmp_path, "--model", tiny_model_dir, "--scorer", tiny_scorer_dir)
    assert code == 0, err
    _, chunk = read_metadata(tmp_path / "seed0.png")
    assert set(chunk["config"]) == {"seeds", "steps", "guidance", "height", "width", "scheduler", "batch_size", "negative_mode", "true_cfg"}


def test_attack_images_carry_the_reworded_prompt_and_its_loss(tmp_path, models):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({PROMPT: {"synonym": {"red": ["crimson", "scarlet"], "circle": ["disk"]}, "antonym": {},
                                          "keywords": ["red", "circle"]}}))
    out = tmp_path / "attack"
    code, err = run_cli("attack", PROMPT, "--space", space, "--budget", 4, "--seeds", "0,2", "--min-similarity", 0.5,
                        "--no-validate", "--out", out, *models)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["best"]["prompt"] != PROMPT  # a rewording won here
    for role in ("original", "best"):
        for i, seed in enumerate(result["seeds"]):
            text, data = read_metadata(out / f"{role}_seed{seed}.png")
            parsed = parse_parameters(text)
            assert text.splitlines()[0] == result[role]["prompt"] and not parsed.get("Negative prompt")
            assert (data["role"], data["seed"], data["loss"]) == (role, seed, result[role]["losses"][i])
            assert parsed["Seed"] == str(seed) and float(parsed["Loss"]) == pytest.approx(result[role]["losses"][i], abs=5e-5)
