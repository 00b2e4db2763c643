"""The shapes world's training helpers: the data set, trimmed CLIP batches, and growing a released text window."""

import json

import numpy as np
import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from dpodiff.errors import UsageError
from dpodiff.shapes import train
from dpodiff.shapes.grammar import parse


def test_dataset_pairs_images_with_77_token_captions_that_parse():
    data = train.build_dataset(n=40, negatives=2, seed=5, mix=train.CAPTION_MIXES["sentences"])
    assert data.images.shape == (40, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.ids.shape == (40, 77) and data.neg_ids.shape == (40, 2, 77)
    texts = train.tokenizer().batch_decode(data.ids, skip_special_tokens=True)
    assert all(parse(t) is not None for t in texts), texts


def test_the_default_dataset_has_captions_in_sds_styles_beside_sentences():
    texts = train.tokenizer().batch_decode(train.build_dataset(n=300, negatives=1, seed=5).ids, skip_special_tokens=True)
    tag_lists = [t for t in texts if parse(t) is None]
    assert 0.1 < len(tag_lists) / len(texts) < 0.45, tag_lists
    assert any("," in t for t in tag_lists) and any(len(t.split()) == 1 for t in tag_lists)


def test_a_generator_only_continuation_reads_the_released_text_encoder(tmp_path):
    """Without a clip stage, the released text encoder is copied into the workdir and read back unchanged."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    release = tmp_path / "release"
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=77)).eval()
    text.save_pretrained(release / "pipeline" / "text_encoder")
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).save_pretrained(release / "pipeline" / "vae")
    work = tmp_path / "work"
    work.mkdir()
    train.copy_released(release, work)
    assert train.text_encoder_dir(work) == work / "text_encoder" and (work / "vae" / "config.json").exists()
    ids = train.tokenize(train.tokenizer(), ["red, circle"])
    with torch.no_grad():
        assert torch.equal(train.load_text_encoder(train.text_encoder_dir(work))(ids)[0], text(ids)[0])


def test_trimmed_batches_give_the_same_text_features():
    """The text tower is causal and pools at the first end token: padding columns after it change nothing."""
    model = train.make_clip(train.COND_CLIP).eval()
    ids = train.tokenize(train.tokenizer(), ["a red circle", "two blue squares on a white background, blurry"])
    short = train.trim(ids)
    assert short.shape[1] < 20 and (short[:, -1] == train.EOS).all()
    with torch.no_grad():
        assert torch.allclose(train.text_features(model, ids), train.text_features(model, short), atol=1e-5)


def test_a_released_20_token_text_tower_grows_to_77_and_keeps_its_states(tmp_path):
    torch.manual_seed(0)
    old = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                                       num_attention_heads=4, max_position_embeddings=20, bos_token_id=49406,
                                       eos_token_id=49407, pad_token_id=49407)).eval()
    old.save_pretrained(tmp_path)
    grown = train.make_clip(train.COND_CLIP).eval()
    train.load_grown(grown, tmp_path, prefix="text_model.")
    table = grown.text_model.embeddings.position_embedding.weight
    assert table.shape[0] == 77 and torch.equal(table[20:], table[19:20].expand(57, -1))
    ids = train.tokenize(train.tokenizer(), ["a red circle above a blue square"])
    with torch.no_grad():
        before = old(ids[:, :20]).last_hidden_state
        after = grown.text_model(ids).last_hidden_state[:, :20]
    assert torch.allclose(before, after, atol=1e-5)


TINY_CLIP = train.ClipSpec(seed=1, hidden=32, layers=1, projection=16, steps=5, batch=8, hard_negatives=1)


def test_a_stage_stopped_by_its_time_limit_resumes_to_the_same_weights(tmp_path):
    """The checkpoint holds weights, optimiser moments, data and noise states: stop + --resume = one run."""
    from transformers import CLIPModel

    data = train.build_dataset(n=64, negatives=1, seed=5, mix=train.CAPTION_MIXES["sentences"])
    train.train_clip(TINY_CLIP, data, tmp_path / "whole" / "clip", "clip")
    assert not (tmp_path / "whole" / "clip.ckpt").exists()  # a finished stage leaves no checkpoint

    stopped = tmp_path / "stopped" / "clip"
    train.train_clip(TINY_CLIP, data, stopped, "clip", max_minutes=1e-9)  # the limit ends it after its first step
    record = json.loads((stopped.parent / "clip_steps.json").read_text())
    assert record["steps"] == 1 and record["planned"] == 5
    assert (stopped / "config.json").exists()  # a usable model, as a limit always left
    with pytest.raises(UsageError, match="pass --resume"):
        train.train_clip(TINY_CLIP, data, stopped, "clip")
    train.train_clip(TINY_CLIP, data, stopped, "clip", run=train.Training(resume=True))
    assert json.loads((stopped.parent / "clip_steps.json").read_text())["steps"] == 5
    whole = CLIPModel.from_pretrained(tmp_path / "whole" / "clip").state_dict()
    resumed = CLIPModel.from_pretrained(stopped).state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_the_command_refuses_to_overwrite_a_checkpoint_without_resume(tmp_path, capsys):
    """Said before the data set (minutes) is built; the checkpoint stays as it was."""
    (tmp_path / "vae_decoder.ckpt").write_bytes(b"state")
    with pytest.raises(SystemExit) as exit_:
        train.main(["--workdir", str(tmp_path), "--stage", "decoder"])
    assert exit_.value.code == 2
    assert "vae_decoder.ckpt holds an unfinished stage: pass --resume" in capsys.readouterr().err
    assert (tmp_path / "vae_decoder.ckpt").read_bytes() == b"state" and not list(tmp_path.glob("*.npz"))
