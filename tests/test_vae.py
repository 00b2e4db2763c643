"""--vae: a VAE instead of the model's own (e.g. SDXL's fp16-fixed VAE, which stays in float16)."""

import json

import torch

from dpodiff.models import load_pipeline
from cli_runner import run_cli


def save_vae(path, force_upcast: bool, seed: int = 5):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, force_upcast=force_upcast)
    vae.save_pretrained(path)
    return vae


def test_a_fixed_vae_replaces_the_models_own_and_keeps_float16(tmp_path, tiny_sdxl_dir):
    fixed = save_vae(tmp_path / "vae-fp16-fix", force_upcast=False)
    own = load_pipeline(str(tiny_sdxl_dir), torch.device("cpu"), torch.float16)
    assert own.pipe.vae.dtype == torch.float32  # SDXL's own VAE (force_upcast) is kept in float32
    backend = load_pipeline(str(tiny_sdxl_dir), torch.device("cpu"), torch.float16, vae=str(tmp_path / "vae-fp16-fix"))
    assert backend.pipe.vae.dtype == torch.float16  # the fixed one decodes in float16
    for name, value in fixed.state_dict().items():
        assert torch.equal(backend.pipe.vae.state_dict()[name], value.half())
    assert backend.describe()["vae"] == str(tmp_path / "vae-fp16-fix")
    assert "vae" not in own.describe()


def test_generate_with_vae_records_it_and_bad_vaes_exit_2(tmp_path, tiny_model_dir, tiny_scorer_dir):
    save_vae(tmp_path / "vae", force_upcast=False)
    common = ["--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--steps", 2, "--seeds", 1]
    code, err = run_cli("generate", "a red circle", *common, "--vae", tmp_path / "vae", "--out", tmp_path / "with")
    assert code == 0, err
    with_vae = json.loads((tmp_path / "with" / "result.json").read_text())
    assert with_vae["generation"]["vae"] == str(tmp_path / "vae")
    code, err = run_cli("generate", "a red circle", *common, "--out", tmp_path / "without")
    assert code == 0, err
    without = json.loads((tmp_path / "without" / "result.json").read_text())
    assert with_vae["loss"] != without["loss"]  # another VAE decoded the same latents

    code, err = run_cli("generate", "a red circle", *common, "--vae", tmp_path / "missing", "--out", tmp_path / "x")
    assert code == 2 and "The VAE folder" in err and "does not exist" in " ".join(err.split())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((tmp_path / "vae" / "config.json").read_text())
    code, err = run_cli("generate", "a red circle", *common, "--vae", tmp_path / "empty", "--out", tmp_path / "y")
    assert code == 2 and "VAE" in err
