"""Loading and saving checkpoints in the transformers CSM format (the format of `sesame/csm-1b`).

A checkpoint is a directory: `config.json` (with `depth_decoder_config` and `codec_config`),
`model.safetensors` (or shards + `model.safetensors.index.json`) holding the backbone, the depth
decoder and the Mimi codec (`codec_model.*`), and `tokenizer.json`. This is the only module of
`csmstream.model` that touches files or the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.errors import CheckpointError
from csmstream.model.csm import CsmModel
from csmstream.model.csm_config import CsmConfig
from csmstream.model.tokenizer import TextTokenizer
from csmstream.model.weight_names import CODEC_PREFIX, TIED_NAMES, ours_from_theirs, theirs_from_ours

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"
# what a hub download fetches: never the original `ckpt.pt` nor other large extras
HUB_FILES = [CONFIG_FILE, "model*.safetensors", WEIGHTS_INDEX_FILE, TOKENIZER_FILE, "generation_config.json"]
# checkpoint entries that are derived state, safe to ignore
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "audio_tokens_offsets")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_NO_CHECKPOINT_HELP = (
    "Pass a local checkpoint directory, or for the gated hub model accept its licence on huggingface.co "
    "and set HF_TOKEN; for a random test checkpoint run `csmstream dev tiny-checkpoint DIR`."
)


@dataclass
class Checkpoint:
    path: Path
    config: CsmConfig
    model: CsmModel
    codec: Mimi
    tokenizer: TextTokenizer
    config_dict: dict[str, Any]  # config.json as read


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → cuda when present, else cpu; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' → bfloat16 on CUDA, float32 elsewhere (CPUs are slow and lossy in half precision)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16 or float16)")
    return _DTYPES[dtype]


# ---- finding the files --------------------------------------------------------------------------------


def _download(repo_id: str, progress: bool) -> Path:
    """Fetch the checkpoint files of a hub repository (cached); the token comes from HF_TOKEN / hf login."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    kwargs: dict[str, Any] = {"allow_patterns": HUB_FILES}
    if not progress:
        from tqdm.auto import tqdm

        class _Silent(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kw):
                kw["disable"] = True
                super().__init__(*args, **kw)

        kwargs["tqdm_class"] = _Silent
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, **kwargs))
    except hub_errors.GatedRepoError as exc:
        raise CheckpointError(
            f"{repo_id!r} is gated: accept its licence at https://huggingface.co/{repo_id} with your account, "
            f"then set HF_TOKEN to a token of that account. {_NO_CHECKPOINT_HELP}"
        ) from exc
    except hub_errors.RepositoryNotFoundError as exc:
        raise CheckpointError(
            f"{repo_id!r} is neither a local directory nor a model on the Hugging Face hub you can access "
            f"(private or gated models need HF_TOKEN). {_NO_CHECKPOINT_HELP}"
        ) from exc
    except (hub_errors.LocalEntryNotFoundError, hub_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"could not download {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            f"Check the network (or HF_HUB_OFFLINE), or work offline: {_NO_CHECKPOINT_HELP}"
        ) from exc


def locate_checkpoint(model: str, progress: bool = True) -> Path:
    """A local checkpoint directory, or a hub id (`owner/name`) downloaded to the hub cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{model!r} is a file; a checkpoint is a directory holding {CONFIG_FILE}")
    if _HUB_ID.match(model) and not model.startswith((".", "~")):
        return _download(model, progress)
    raise CheckpointError(f"checkpoint directory {model!r} does not exist. {_NO_CHECKPOINT_HELP}")


def read_config(path: Path) -> tuple[dict[str, Any], CsmConfig]:
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(f"{path} holds no {CONFIG_FILE}: is it a CSM checkpoint directory?")
    try:
        config_dict = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_file} is not valid JSON ({exc}); the checkpoint is corrupt") from exc
    try:
        return config_dict, CsmConfig.from_dict(config_dict)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{config_file} does not describe a CSM model: {exc}") from exc


def _weight_files(path: Path) -> list[Path]:
    index = path / WEIGHTS_INDEX_FILE
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{index} is corrupt ({exc})") from exc
        files = [path / shard for shard in shards]
    else:
        files = [path / WEIGHTS_FILE]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(
            f"{path} lacks the weights file(s) {', '.join(missing)} (an interrupted download? fetch it again)"
        )
    return files


def _tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every weight, one at a time, so peak memory stays near one model copy."""
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                for name in f.keys():
                    yield name, f.get_tensor(name)
        except Exception as exc:  # safetensors raises its own SafetensorError for broken files
            raise CheckpointError(f"cannot read {file} ({exc}); the file is corrupt or incomplete") from exc


# ---- loading ------------------------------------------------------------------------------------------


def _copy_into(target: torch.Tensor, tensor: torch.Tensor, name: str) -> None:
    if target.shape != tensor.shape:
        raise CheckpointError(
            f"weight {name!r} has shape {tuple(tensor.shape)}, config.json implies {tuple(target.shape)}"
        )
    with torch.no_grad():
        target.copy_(tensor)


def _short_list(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def load_checkpoint(
    model: str, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto", progress: bool = True
) -> Checkpoint:
    """Load model, codec and tokenizer from a checkpoint directory or hub id. Errors are `CheckpointError`s
    that say what to do. The codec stays in float32 (it is small, and its quantizer wants the precision)."""
    path = locate_checkpoint(model, progress)
    config_dict, config = read_config(path)
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    tokenizer_file = path / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise CheckpointError(f"{path} holds no {TOKENIZER_FILE}")
    try:
        tokenizer = TextTokenizer.from_file(tokenizer_file)
    except Exception as exc:  # tokenizers raises plain Exceptions
        raise CheckpointError(f"cannot load {tokenizer_file}: {exc}") from exc
    try:
        codec_config = MimiConfig.from_dict(config_dict.get("codec_config") or {})
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"config.json: bad codec_config ({exc})") from exc

    # 1. the CSM model: built without memory or random init, then filled tensor by tensor
    with torch.device("meta"):
        csm = CsmModel(config)
    csm = csm.to(dtype=target_dtype).to_empty(device=target_device).eval()
    targets = csm.state_dict(keep_vars=True)  # tied: two names, one tensor
    filled: set[int] = set()
    codec_state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for name, tensor in _tensors(_weight_files(path)):
        if name.startswith(CODEC_PREFIX):
            codec_state[name[len(CODEC_PREFIX) :]] = tensor
            continue
        ours = ours_from_theirs(name)
        if ours is None or ours not in targets:
            if not name.endswith(_IGNORED_SUFFIXES):
                unexpected.append(name)
            continue
        _copy_into(targets[ours].data, tensor, name)
        filled.add(id(targets[ours]))
    # tied embeddings: both names hold one tensor, so either name in the file fills both
    missing = [theirs_from_ours(n) for n, t in targets.items() if id(t) not in filled]
    if missing:
        raise CheckpointError(f"{path}: weights missing from the checkpoint: {_short_list(missing)}")
    if unexpected:
        raise CheckpointError(
            f"{path}: weights this model does not have: {_short_list(unexpected)} (does config.json match?)"
        )

    # 2. the codec: small, so built normally and loaded strictly
    if not codec_state:
        raise CheckpointError(f"{path}: the checkpoint holds no codec weights ({CODEC_PREFIX}*)")
    codec = Mimi(codec_config)
    try:
        codec.load_state_dict(codec_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: codec weights do not match codec_config: {exc}") from exc
    codec = codec.to(target_device).eval()
    return Checkpoint(
        path=path, config=config, model=csm, codec=codec, tokenizer=tokenizer, config_dict=config_dict
    )


# ---- saving -------------------------------------------------------------------------------------------


def save_checkpoint(
    directory: str | Path,
    config_dict: dict[str, Any],
    model: CsmModel,
    codec: Mimi,
    tokenizer_json: str | Path,
) -> Path:
    """Write a checkpoint that both `load_checkpoint` and transformers' `from_pretrained` read.

    `tokenizer_json` is the tokenizer.json text or a path to copy it from.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    written: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in written:
            continue  # the second name of a tied tensor: one copy in the file, as transformers writes it
        written.add(id(tensor))
        tensors[theirs_from_ours(name)] = tensor.detach().to("cpu").contiguous()
    backbone_name, depth_name = (theirs_from_ours(n) for n in TIED_NAMES)
    if model.config.tie_codebook_embeddings and backbone_name in tensors:
        # transformers stores the shared audio embeddings under the depth decoder's name
        tensors[depth_name] = tensors.pop(backbone_name)
    for name, tensor in codec.state_dict().items():
        tensors[CODEC_PREFIX + name] = tensor.detach().to("cpu").contiguous()
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
    if isinstance(tokenizer_json, Path):
        tokenizer_json = tokenizer_json.read_text(encoding="utf-8")
    (directory / TOKENIZER_FILE).write_text(tokenizer_json, encoding="utf-8")
    return directory
