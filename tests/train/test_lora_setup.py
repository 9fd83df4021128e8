"""LoRA on our CsmModel through PEFT: what is adapted, what is frozen, the zero adapter, the saved files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from csmstream.errors import BadRequest
from csmstream.model.adapter_files import read_adapter
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.generate import generate
from csmstream.model.lora_targets import parse_targets
from csmstream.model.sampling import SamplingParams
from csmstream.model.tokenizer import build_prompt
from csmstream.train.lora_setup import (
    LoraSettings,
    LoraSetupError,
    adapter_state,
    add_lora,
    save_adapter,
    target_module_names,
)


def _load(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False)


def _greedy(model, tokenizer, text: str) -> torch.Tensor:
    prompt = build_prompt(tokenizer, [], 0, text, None, max_rows=2048)
    return generate(model, prompt.tokens, prompt.mask, SamplingParams(greedy=True, seed=0), max_frames=12)


def test_adapts_every_projection_of_both_stacks_and_freezes_the_base(tiny_checkpoint_dir):
    checkpoint = _load(tiny_checkpoint_dir)
    config = checkpoint.config
    names = target_module_names(checkpoint.model, parse_targets("all"))
    expected = (config.backbone.num_layers + config.depth_decoder.num_layers) * 7
    assert len(names) == expected and all(
        n.startswith(("backbone.layers.", "depth_decoder.layers.")) for n in names
    )
    peft_model = add_lora(checkpoint.model, LoraSettings(rank=4, alpha=8), "tiny")
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert len(trainable) == 2 * expected and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert not any(p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n)


def test_a_fresh_adapter_speaks_exactly_like_the_base_model(tiny_checkpoint_dir):
    checkpoint = _load(tiny_checkpoint_dir)
    base_codes = _greedy(checkpoint.model, checkpoint.tokenizer, "Hello there, how are you?")
    torch.manual_seed(3)
    peft_model = add_lora(checkpoint.model, LoraSettings(), "tiny")
    lora_a = [p for n, p in peft_model.named_parameters() if ".lora_A." in n]
    assert all(p.abs().sum() > 0 for p in lora_a), "A is random, B is zero: the product is zero"
    adapted = _greedy(peft_model.base_model.model, checkpoint.tokenizer, "Hello there, how are you?")
    assert base_codes.shape[0] > 2 and torch.equal(adapted, base_codes)


def test_saved_adapter_is_peft_format_and_reads_back(tiny_checkpoint_dir, tmp_path):
    checkpoint = _load(tiny_checkpoint_dir)
    peft_model = add_lora(
        checkpoint.model, LoraSettings(rank=4, alpha=8, targets=("q_proj", "v_proj")), "my/model"
    )
    state = adapter_state(peft_model)
    with torch.no_grad():
        for name in state:
            state[name] = torch.randn_like(state[name])
    own = adapter_state(peft_model)
    directory = save_adapter(peft_model, state, tmp_path / "adapter")
    assert sorted(p.name for p in directory.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "my/model" and config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    tensors = load_file(directory / "adapter_model.safetensors")
    key = "base_model.model.backbone.layers.0.attention.q_proj.lora_A.weight"
    assert key in tensors and torch.equal(tensors[key], state[key.replace(".lora_A.", ".lora_A.default.")])
    served = read_adapter(directory)  # the serving side's reader takes it
    assert served.rank == 4 and served.scale == 2.0
    assert "depth_decoder.layers.1.attention.v_proj" in served.weights
    # the model keeps its own adapter through the save
    assert all(torch.equal(tensor, own[name]) for name, tensor in adapter_state(peft_model).items())


def test_bad_settings_are_refused_clearly():
    with pytest.raises(BadRequest, match="lm_head given; choose from q_proj"):
        LoraSettings(targets=("q_proj", "lm_head"))
    with pytest.raises(LoraSetupError, match="--rank"):
        LoraSettings(rank=0)
