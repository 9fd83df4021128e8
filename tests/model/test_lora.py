"""LoRA adapters in the model: PEFT's files read into the gathered multi-adapter bank, checked against PEFT itself
(our names) and against transformers + PEFT (their names), rows of different adapters in one batch, and the
ways an adapter folder can be wrong."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from model_helpers import TINY_TEXT_VOCAB, audio_rows, text_rows, transformers_twin
from safetensors.torch import load_file, save_file

from csmstream.model.adapter_files import AdapterError, load_adapter, read_adapter
from csmstream.model.generate import generate
from csmstream.model.lora import AdapterBank, merge_into_weights
from csmstream.model.sampling import SamplingParams
from lora_helpers import make_peft_adapter

peft = pytest.importorskip("peft")


def _prompt(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    text = text_rows(torch.randint(0, TINY_TEXT_VOCAB, (7,), generator=generator))
    audio = audio_rows(torch.randint(0, 2048, (4, 32), generator=generator))
    return torch.cat((audio[0], text[0])), torch.cat((audio[1], text[1]))


def _greedy(model, seed: int, adapter_index: int | None = None, frames: int = 6) -> torch.Tensor:
    tokens, mask = _prompt(seed)
    return generate(model, tokens, mask, SamplingParams(greedy=True), frames, adapter_index=adapter_index)


def test_zero_b_adapter_speaks_exactly_like_the_base_model(tiny_model, tmp_path):
    make_peft_adapter(tiny_model, tmp_path / "zero", seed=1, zero_b=True)
    served = copy.deepcopy(tiny_model)
    bank = AdapterBank(served, num_adapters=2, max_rank=8)
    bank.write(1, load_adapter(tmp_path / "zero", served))
    assert torch.equal(_greedy(served, 5, adapter_index=1), _greedy(tiny_model, 5))


def test_a_saved_peft_adapter_loads_into_the_bank_with_the_same_codes_and_logits(tiny_model, tmp_path):
    trained = make_peft_adapter(tiny_model, tmp_path / "a", seed=2)
    served = copy.deepcopy(tiny_model)
    bank = AdapterBank(served, num_adapters=3, max_rank=8)  # rank 4 adapter in a rank 8 bank: zero padded
    bank.write(2, load_adapter(tmp_path / "a", served))
    tokens, mask = _prompt(0)
    start = torch.zeros(1, dtype=torch.int64)
    with torch.no_grad():
        embeds = served.embed_rows(tokens[None], mask[None])
        expected = trained.base_model.model.backbone_forward(embeds, None, None, start)
        ours = served.backbone_forward(embeds, None, None, start, adapter_ids=torch.tensor([2]))
        base = served.backbone_forward(embeds, None, None, start)
    assert (expected - base).abs().max() > 1e-2, "the adapter changes nothing: the comparison would be empty"
    assert (ours - expected).abs().max() < 1e-5
    codes = _greedy(served, 3, adapter_index=2)
    assert torch.equal(codes, _greedy(trained.base_model.model, 3))
    assert not torch.equal(codes, _greedy(tiny_model, 3)), "adapted and base codes should differ"


def test_rows_of_different_adapters_in_one_batch_equal_each_row_alone(tiny_model, tmp_path):
    served = copy.deepcopy(tiny_model)
    bank = AdapterBank(served, num_adapters=2, max_rank=4)
    for index, seed in ((1, 11), (2, 12)):
        make_peft_adapter(tiny_model, tmp_path / str(index), seed=seed, rank=4 if index == 1 else 2)
        bank.write(index, load_adapter(tmp_path / str(index), served))
    prompts = [_prompt(seed) for seed in (20, 21, 22)]
    tokens = torch.stack([p[0] for p in prompts])
    mask = torch.stack([p[1] for p in prompts])
    start = torch.zeros(3, dtype=torch.int64)
    ids = torch.tensor([0, 1, 2])
    with torch.no_grad():
        embeds = served.embed_rows(tokens, mask)
        batched = served.backbone_forward(embeds, None, None, start, adapter_ids=ids)
        for row in range(3):
            alone = served.backbone_forward(
                embeds[row : row + 1], None, None, start[:1], adapter_ids=ids[row : row + 1]
            )
            assert (batched[row] - alone[0]).abs().max() < 1e-5, f"row {row} changed in the batch"
        base = served.backbone_forward(embeds[:1], None, None, start[:1])
    assert torch.equal(batched[0], base[0]) or (batched[0] - base[0]).abs().max() < 1e-6


def test_a_merged_adapter_gives_the_codes_of_the_bank(tiny_model, tmp_path):
    make_peft_adapter(tiny_model, tmp_path / "m", seed=4)
    banked = copy.deepcopy(tiny_model)
    AdapterBank(banked, num_adapters=1, max_rank=4).write(1, load_adapter(tmp_path / "m", banked))
    merged = copy.deepcopy(tiny_model)
    merge_into_weights(read_adapter(tmp_path / "m"), merged)
    assert torch.equal(_greedy(merged, 8), _greedy(banked, 8, adapter_index=1))


def test_an_adapter_trained_with_transformers_and_peft_loads_under_our_names(
    tiny_model, tiny_config_dict, tmp_path
):
    theirs = transformers_twin(copy.deepcopy(tiny_model), tiny_config_dict)
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0
    )
    wrapped = peft.get_peft_model(theirs, config)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            # PEFT wraps the codec's q/v projections too; CSM's loss never runs the codec, so training leaves
            # their B at zero: do the same here
            if "lora_A" in name or ("lora_B" in name and "codec_model" not in name):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    wrapped.save_pretrained(str(tmp_path / "hf"))
    keys = load_file(str(tmp_path / "hf" / "adapter_model.safetensors"))
    assert any(".backbone_model.layers.0.self_attn.q_proj." in k for k in keys), "not transformers' names"
    assert any(".codec_model." in k for k in keys), "PEFT did not wrap the codec: the skip is untested"
    served = copy.deepcopy(tiny_model)
    adapter = load_adapter(tmp_path / "hf", served)
    num_layers = len(served.backbone.layers) + len(served.depth_decoder.layers)
    assert len(adapter.weights) == 3 * num_layers
    AdapterBank(served, num_adapters=1, max_rank=4).write(1, adapter)
    tokens, mask = _prompt(1)
    with torch.no_grad():
        embeds = served.embed_rows(tokens[None], mask[None])
        expected = wrapped(inputs_embeds=embeds).logits
        ours = served.codebook0_logits(
            served.backbone_forward(
                embeds, None, None, torch.zeros(1, dtype=torch.int64), adapter_ids=torch.tensor([1])
            )
        )
    assert (ours - expected).abs().max() < 1e-4
    # a codec adapter that does change the codec is refused, not silently dropped
    changed = {k: (v + 1 if ".codec_model." in k and "lora_B" in k else v) for k, v in keys.items()}
    save_file(changed, str(tmp_path / "hf" / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="changes the Mimi codec"):
        read_adapter(tmp_path / "hf")


# ---- bad adapters: each a clear AdapterError ------------------------------------------------------------


@pytest.fixture
def good_adapter(tiny_model, tmp_path):
    make_peft_adapter(tiny_model, tmp_path / "good", seed=9, targets=("q_proj", "down_proj"))
    return tmp_path / "good"


def test_a_missing_or_corrupt_adapter_file_is_a_clear_error(good_adapter, tiny_model):
    weights = good_adapter / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterError, match="damaged or not a safetensors file"):
        load_adapter(good_adapter, tiny_model)
    weights.unlink()
    with pytest.raises(AdapterError, match="adapter_model.safetensors is missing"):
        load_adapter(good_adapter, tiny_model)


def test_an_adapter_for_another_model_shape_is_refused(good_adapter, tiny_model):
    tensors = load_file(str(good_adapter / "adapter_model.safetensors"))
    widened = {k: torch.zeros(v.shape[0], v.shape[1] + 8) if "lora_A" in k else v for k, v in tensors.items()}
    save_file(widened, str(good_adapter / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="trained on another model"):
        load_adapter(good_adapter, tiny_model)


def test_unsupported_peft_settings_and_foreign_modules_are_refused(good_adapter, tiny_model):
    config_file = good_adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(AdapterError, match="DoRA"):
        load_adapter(good_adapter, tiny_model)
    config_file.write_text(json.dumps(config))
    tensors = load_file(str(good_adapter / "adapter_model.safetensors"))
    tensors["base_model.model.codebook0_head.lora_A.weight"] = torch.zeros(4, 16)
    save_file(tensors, str(good_adapter / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="not a projection csmstream can adapt"):
        load_adapter(good_adapter, tiny_model)


def test_a_bank_refuses_an_adapter_of_higher_rank(good_adapter, tiny_model):
    served = copy.deepcopy(tiny_model)
    bank = AdapterBank(served, num_adapters=1, max_rank=2)
    with pytest.raises(ValueError, match="rank 4"):
        bank.write(1, load_adapter(good_adapter, served))
