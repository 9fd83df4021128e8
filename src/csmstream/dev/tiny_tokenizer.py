"""A small Llama-3-style tokenizer built offline: byte-level BPE trained on a built-in English text.

Byte-level means any text encodes (unknown words fall back to byte tokens). The special tokens carry the
Llama-3 names the code looks up (`<|begin_of_text|>`, `<|end_of_text|>`) plus the ones transformers'
`CsmProcessor` expects, and sit after the ordinary tokens, as in Llama-3.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]

# Training text: everyday words, numbers and punctuation, so common words become single tokens.
_CORPUS = """
Hello there, how are you doing today? I am doing well, thank you for asking.
The quick brown fox jumps over the lazy dog. A small cat sleeps in the warm sun.
We will meet at the station at nine o'clock tomorrow morning, if the train is on time.
Could you please tell me the way to the nearest library? It is two streets from here.
She said that the weather would be cold and windy, so bring a coat and an umbrella.
Speech is the sound of people talking: words, pauses, laughter and the rhythm of a voice.
This is a test of the streaming speech server. One, two, three, four, five, six, seven, eight, nine, ten.
Good morning! Good evening! Good night. Welcome back. See you later. Have a nice day.
What time is it now? It is half past three in the afternoon, and the shop closes at six.
The children played in the garden while their parents cooked dinner in the kitchen.
Numbers like 12, 250 and 2048 appear in text too, as do names such as Anna, Ben and Clara.
Yes. No. Maybe. Of course! Why not? I think so. I don't know. Let me see. That sounds great.
Music, books, films and games: tell me what you like, and I will tell you what I like.
The river flows through the old town, past the market, the church and the bridge.
Please speak slowly and clearly, so that everyone in the room can hear every word you say.
"""

TINY_VOCAB_SIZE = 400  # ordinary tokens; the special tokens come on top


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE) -> Tokenizer:
    """The same tokenizer on every call (BPE training is deterministic)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator([line for line in _CORPUS.splitlines() if line], trainer=trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer
