"""Characters no engine should see: control characters (piper refuses a NUL, the tokenizer may choke) and
lone UTF-16 surrogates (JSON's `\\uXXXX` can carry half a pair; nothing can encode it)."""

from __future__ import annotations

import re

# vertical tab, form feed, the file/group/record/unit separators, NEL: they separate words, so a space
_SPACE_CONTROLS = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
# every other C0/C1 control except tab, line feed and carriage return: removed
_OTHER_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def strip_controls(text: str) -> str:
    """The text without control characters other than tab and line breaks (word separators become spaces)."""
    return _OTHER_CONTROLS.sub("", _SPACE_CONTROLS.sub(" ", text))


def speakable(text: str) -> str:
    """Text from a source that is not a client (an LLM's answer): controls stripped, lone surrogates dropped."""
    return _SURROGATE.sub("", strip_controls(text))
