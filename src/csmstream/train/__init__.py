"""Fine-tuning (issue 10): `finetune prepare` makes a dataset (`prepare.py`, `dataset.py`, …); `finetune train`
fits a LoRA adapter on it: examples laid out as prompts (`examples.py`), the data order (`data_order.py`), the
CSM objective (`objective.py`), PEFT on our model (`lora_setup.py`), the loop (`trainer.py`), checkpoints and
resume (`run_state.py`), and the voice it makes (`voice_output.py`)."""
