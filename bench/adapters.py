"""Fine-tuned voices served together: step time at batch 8 with 0, 1, 4 and 8 distinct LoRA adapters, and the
device memory each loaded adapter takes.

    python bench/adapters.py [--size small] [--steps 20] [--rank 16] [--threads N] [--device auto] [--no-compile]

Rows (the runner's batched step, as the engine runs it: 8 decoding slots, prompts of 64 rows):
- `no bank`        `--max-adapters 0`: the model without any adapter machinery (the reference);
- `shipped, 0`     the shipped server (`--max-adapters 4 --max-lora-rank 16`, all seven projections) with
                   base voices only: a step without adapters runs the plain shape;
- `shipped, 1 / 4` one adapter for all 8 rows / 4 distinct adapters (2 rows each);
- `bank 8, 8`      `--max-adapters 8`: 8 distinct adapters, one per row.
On CUDA the steps are compiled and replayed as CUDA graphs, as the shipped server runs them (`--no-compile`: eager,
the `CSMSTREAM_NO_COMPILE=1` variant); on the CPU they are eager, as there. The goal is <= 15 % over `no bank`. Memory per adapter is the bank's share per index (the rank of the bank,
whatever the adapter's own rank), for this size and for the real CSM-1B shape in bf16. Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csmstream.engine.runner import ModelRunner  # noqa: E402
from csmstream.model.checkpoint import load_checkpoint  # noqa: E402
from csmstream.model.csm import CsmModel  # noqa: E402
from csmstream.model.csm_config import CsmConfig  # noqa: E402
from csmstream.model.lora import ADAPTABLE, AdapterBank, LoraWeights, adaptable_projections  # noqa: E402
from csmstream.model.sampling import SamplingParams  # noqa: E402
from model_sizes import bench_config, describe_device, write_bench_checkpoint_elsewhere  # noqa: E402

BATCH = 8
PROMPT_ROWS = 64
MAX_ROWS = 512
ROUNDS = 5
SHIPPED_ADAPTERS = 4  # Settings.max_adapters
SHIPPED_RANK = 16  # Settings.max_lora_rank


def random_adapter(model: torch.nn.Module, rank: int, seed: int) -> LoraWeights:
    generator = torch.Generator().manual_seed(seed)
    weights = {
        name: (
            torch.randn(rank, layer.in_features, generator=generator) * 0.02,
            torch.randn(layer.out_features, rank, generator=generator) * 0.02,
        )
        for name, layer in adaptable_projections(model).items()
    }
    return LoraWeights(rank=rank, scale=2.0, weights=weights)


def build_runner(
    checkpoint, bank_size: int, distinct: int, rank: int, compile: bool
) -> tuple[ModelRunner, int | None]:
    """A runner with 8 decoding slots (prompts prefilled), `distinct` adapters spread over the rows; and the
    bank's bytes per adapter."""
    model = copy.deepcopy(checkpoint.model)
    bank = AdapterBank(model, bank_size, rank, ADAPTABLE) if bank_size else None
    for index in range(1, distinct + 1):
        bank.write(index, random_adapter(model, rank, seed=index))
    runner = ModelRunner(model, checkpoint.codec, BATCH, MAX_ROWS, adapters=bank is not None, compile=compile)
    vocab = model.config.text_vocab_size
    for slot in range(BATCH):
        adapter = 0 if distinct == 0 else 1 + slot % distinct
        runner.start_slot(slot, SamplingParams(seed=slot, topk=50), adapter)
        tokens = torch.zeros(PROMPT_ROWS, 33, dtype=torch.int64)
        tokens[:, 32] = torch.randint(0, vocab, (PROMPT_ROWS,), generator=torch.Generator().manual_seed(slot))
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask[:, 32] = True
        runner.prefill(slot, tokens, mask, 0, True)
    return runner, None if bank is None else bank.nbytes_per_adapter


def time_steps(runner: ModelRunner, first_frame: int, steps: int) -> list[float]:
    """ms of `steps` batched steps of all 8 slots, from frame `first_frame` on."""
    slots = list(range(BATCH))
    times = []
    for frame in range(first_frame, first_frame + steps):
        t0 = time.perf_counter()
        runner.step(slots, [PROMPT_ROWS + frame] * BATCH, [frame] * BATCH)
        if runner.device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def csm_1b_bytes_per_adapter(rank: int) -> int:
    """The bank's share per index for the real CSM-1B shape in bf16 (built on the meta device: no memory)."""
    from csmstream.dev.tiny_tokenizer import build_tiny_tokenizer

    config = CsmConfig.from_dict(bench_config("csm-1b", build_tiny_tokenizer().get_vocab_size(True)))
    with torch.device("meta"):
        model = CsmModel(config).to(torch.bfloat16)
        return AdapterBank(model, 1, rank, ADAPTABLE).nbytes_per_adapter


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", choices=["tiny", "small", "csm-1b"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rank", type=int, default=SHIPPED_RANK)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="eager steps on CUDA too (the CSMSTREAM_NO_COMPILE=1 variant)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size)
        checkpoint = load_checkpoint(str(path), device=args.device, dtype="auto")
        per_round = max(1, args.steps // ROUNDS)
        compile = not args.no_compile
        mode = (
            "compiled + CUDA graphs" if compile and next(checkpoint.model.parameters()).is_cuda else "eager"
        )
        print(
            f"# adapters: {args.size} model on {describe_device()} ({mode}), batch {BATCH}, rank {args.rank}"
        )
        rows = [
            ("no bank", 0, 0),
            (f"shipped ({SHIPPED_ADAPTERS}), 0 adapters", SHIPPED_ADAPTERS, 0),
            (f"shipped ({SHIPPED_ADAPTERS}), 1 adapter", SHIPPED_ADAPTERS, 1),
            (f"shipped ({SHIPPED_ADAPTERS}), 4 adapters", SHIPPED_ADAPTERS, 4),
            ("bank 8, 8 adapters", 8, 8),
        ]
        built = [
            (label, *build_runner(checkpoint, bank_size, distinct, args.rank, compile))
            for label, bank_size, distinct in rows
        ]
        for label, runner, _ in built:
            first_ms = time_steps(runner, 0, 3)[
                0
            ]  # warm caches and allocators (on CUDA: compile and capture)
            print(
                f"{label:<30} first step {first_ms:9.0f} ms (compile and capture, where they run)", flush=True
            )
        # rounds interleave the configurations, so a slow spell of the machine hits them all alike
        times: dict[str, list[float]] = {label: [] for label, _, _ in built}
        for round_index in range(ROUNDS):
            for label, runner, _ in built:
                times[label] += time_steps(runner, 3 + round_index * per_round, per_round)
        nbytes = next(n for _, _, n in built if n is not None)
        reference = statistics.median(times[built[0][0]])
        print(f"{'configuration':<30} {'step ms':>8} {'vs no bank':>11}")
        for label, _, _ in built:
            ms = statistics.median(times[label])
            print(f"{label:<30} {ms:8.1f} {100.0 * (ms / reference - 1):+10.1f}%")
        print(f"memory per loaded adapter ({args.size}, rank {args.rank}): {nbytes / 2**20:.2f} MiB")
        print(
            f"memory per loaded adapter (csm-1b shape, bf16, rank {args.rank}): "
            f"{csm_1b_bytes_per_adapter(args.rank) / 2**20:.1f} MiB"
        )


if __name__ == "__main__":
    main()
