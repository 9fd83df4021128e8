"""Loading and saving checkpoints: transformers-made checkpoints, our own, and every way they can be broken."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from model_helpers import text_rows

from csmstream.dev.tiny_model import build_tiny_model, tiny_csm_config
from csmstream.dev.tiny_tokenizer import build_tiny_tokenizer
from csmstream.errors import CheckpointError
from csmstream.model.checkpoint import load_checkpoint, save_checkpoint
from csmstream.model.generate import generate
from csmstream.model.sampling import SamplingParams

transformers = pytest.importorskip("transformers")


def _greedy_transformers(model, ids: torch.Tensor, num_frames: int) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(
            input_ids=ids[None], max_new_tokens=num_frames, do_sample=False, depth_decoder_do_sample=False
        )[0]


def _greedy_ours(checkpoint, ids: torch.Tensor, num_frames: int) -> torch.Tensor:
    tokens, mask = text_rows(ids)
    return generate(checkpoint.model, tokens, mask, SamplingParams(greedy=True), max_frames=num_frames)


@pytest.fixture(scope="module")
def transformers_checkpoint(tmp_path_factory):
    """A checkpoint written by transformers itself: random CsmForConditionalGeneration + save_pretrained,
    and a tokenizer saved by transformers' tokenizer class. Returns (directory, the transformers model)."""
    directory = tmp_path_factory.mktemp("transformers_made")
    tokenizer = build_tiny_tokenizer()
    config = tiny_csm_config(tokenizer.get_vocab_size(with_added_tokens=True))
    config["initializer_range"] = 0.5  # spread logits well apart so greedy choices are no float-noise ties
    torch.manual_seed(11)
    model = transformers.CsmForConditionalGeneration(transformers.CsmConfig(**config)).eval()
    with torch.no_grad():
        # ids >= 2048 are no codes; a trained model never predicts them, and we never sample them
        model.lm_head.weight[2048:] = 0
        model.depth_decoder.codebooks_head.weight[..., 2048:] = 0
    model.save_pretrained(str(directory))
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    ).save_pretrained(str(directory))
    return directory, model


def test_transformers_made_checkpoint_loads_and_generates_the_same_greedy_codes(transformers_checkpoint):
    directory, reference = transformers_checkpoint
    checkpoint = load_checkpoint(str(directory), device="cpu", dtype="float32", progress=False)
    ids = torch.tensor(checkpoint.tokenizer.segment_ids(0, "Hello there, how are you?"))
    expected = _greedy_transformers(reference, ids, 20)
    actual = _greedy_ours(checkpoint, ids, 20)
    assert expected.shape == (20, 32)
    assert len(set(expected[:, 0].tolist())) > 1, "degenerate reference output"
    assert torch.equal(actual, expected)
    # the codec came along too, with the weights transformers wrote
    from safetensors.torch import load_file

    written = load_file(str(directory / "model.safetensors"))
    for name, tensor in checkpoint.codec.state_dict().items():
        assert torch.equal(tensor, written[f"codec_model.{name}"]), f"codec weight {name} differs"


def test_tiny_checkpoint_loads_in_transformers_and_agrees(tiny_checkpoint_dir):
    """Our writer's output is a real transformers checkpoint: transformers loads every weight, same codes."""
    reference, info = transformers.CsmForConditionalGeneration.from_pretrained(
        str(tiny_checkpoint_dir), output_loading_info=True
    )
    assert not any(info.values()), f"transformers did not load our checkpoint cleanly: {info}"
    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", progress=False)
    ids = torch.tensor(checkpoint.tokenizer.segment_ids(1, "Good morning"))
    assert torch.equal(_greedy_ours(checkpoint, ids, 8), _greedy_transformers(reference.eval(), ids, 8))


def test_save_load_round_trip_keeps_every_weight(tmp_path):
    tokenizer = build_tiny_tokenizer()
    config = tiny_csm_config(tokenizer.get_vocab_size(with_added_tokens=True))
    config["tie_codebooks_embeddings"] = False  # the untied layout: two embedding tables in the file
    model = build_tiny_model(config, seed=5)
    with torch.no_grad():
        model.depth_audio_embeddings.weight.mul_(2)  # make the two tables differ
    source = load_checkpoint_codec_donor(tmp_path)
    save_checkpoint(tmp_path / "untied", config, model, source.codec, tokenizer.to_str())
    loaded = load_checkpoint(str(tmp_path / "untied"), device="cpu", progress=False)
    assert loaded.model.audio_embeddings is not loaded.model.depth_audio_embeddings
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), f"{name} changed on the way"


def load_checkpoint_codec_donor(tmp_path):
    from csmstream.dev.tiny_checkpoint import write_tiny_checkpoint

    return load_checkpoint(str(write_tiny_checkpoint(tmp_path / "donor", seed=1).path), device="cpu")


def test_tied_embeddings_are_one_tensor_after_loading(tiny_checkpoint_dir):
    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", progress=False)
    assert checkpoint.model.audio_embeddings.weight is checkpoint.model.depth_audio_embeddings.weight


def test_half_precision_load(tiny_checkpoint_dir):
    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="bfloat16", progress=False)
    assert checkpoint.model.codebook0_head.weight.dtype == torch.bfloat16
    assert checkpoint.model.backbone.rotary.inv_freq.dtype == torch.float32, "RoPE frequencies must stay fp32"
    ids = torch.tensor(checkpoint.tokenizer.segment_ids(0, "Hello"))
    codes = _greedy_ours(checkpoint, ids, 3)
    assert codes.shape == (3, 32) and codes.max() < 2048


# ---- broken checkpoints ------------------------------------------------------------------------------------


@pytest.fixture
def broken_copy(tiny_checkpoint_dir, tmp_path):
    """A private copy of the tiny checkpoint to damage."""
    return shutil.copytree(tiny_checkpoint_dir, tmp_path / "copy")


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*tiny-checkpoint"):
        load_checkpoint(str(tmp_path / "nowhere"))


def test_a_file_is_not_a_checkpoint(broken_copy):
    with pytest.raises(CheckpointError, match="is a file"):
        load_checkpoint(str(broken_copy / "config.json"))


def test_corrupt_config(broken_copy):
    (broken_copy / "config.json").write_text('{"num_codebooks": 32, ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(str(broken_copy))


def test_config_without_depth_decoder(broken_copy):
    config = json.loads((broken_copy / "config.json").read_text())
    del config["depth_decoder_config"]
    (broken_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="depth_decoder_config"):
        load_checkpoint(str(broken_copy))


def test_config_that_does_not_match_the_weights(broken_copy):
    config = json.loads((broken_copy / "config.json").read_text())
    config["intermediate_size"] = 256
    (broken_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(str(broken_copy))


def test_missing_weights_file(broken_copy):
    (broken_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(str(broken_copy))


def test_truncated_weights_file(broken_copy):
    data = (broken_copy / "model.safetensors").read_bytes()
    (broken_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        load_checkpoint(str(broken_copy))


def test_weights_missing_from_the_file(broken_copy):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(broken_copy / "model.safetensors"))
    del tensors["backbone_model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(broken_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing.*layers.1.mlp.up_proj"):
        load_checkpoint(str(broken_copy))


def test_missing_tokenizer(broken_copy):
    (broken_copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_checkpoint(str(broken_copy))


def test_offline_hub_download_says_what_to_do(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("network is unreachable and the file is not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="HF_TOKEN.*tiny-checkpoint") as error:
        load_checkpoint("sesame/csm-1b", progress=False)
    assert "could not download 'sesame/csm-1b'" in str(error.value)

    def gated(*args, **kwargs):
        raise GatedRepoError("401 gated", response=_FakeResponse())

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(CheckpointError, match="accept its licence.*HF_TOKEN"):
        load_checkpoint("sesame/csm-1b", progress=False)


class _FakeResponse:
    status_code = 401
    headers: dict = {}
    url = "https://huggingface.co/sesame/csm-1b"
    request = None

    def json(self):
        return {}
