"""Fine-tuning (issue 10): the CSM training objective (`objective.py`), later LoRA adapters and the loop."""
