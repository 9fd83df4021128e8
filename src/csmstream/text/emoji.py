"""Which characters are emoji (pictographs, their modifiers and joiners).

Both the splitter (emoji never make or break a sentence boundary) and the normaliser (emoji are
dropped before speaking) need the same answer, so it lives here. The ranges are the Unicode blocks
that hold emoji presentation characters, plus the invisible pieces of emoji sequences.
"""

from __future__ import annotations

import re

# (first, last) code points, inclusive
EMOJI_RANGES: tuple[tuple[int, int], ...] = (
    (0x1F000, 0x1FAFF),  # pictographs, emoticons, transport, flags' regional indicators, skin tones ...
    (0x2600, 0x27BF),  # miscellaneous symbols and dingbats (☀ ☕ ✅ ❤ ✨)
    (0x231A, 0x231B),  # ⌚ ⌛
    (0x23E9, 0x23F3),  # ⏩ … ⏳
    (0x23F8, 0x23FA),
    (0x25AA, 0x25AB),
    (0x25B6, 0x25B6),  # ▶
    (0x25C0, 0x25C0),
    (0x25FB, 0x25FE),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),  # ⭐
    (0x2B55, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x200D, 0x200D),  # zero-width joiner inside sequences (👩‍💻)
    (0x20E3, 0x20E3),  # combining keycap
    (0xFE0E, 0xFE0F),  # variation selectors (text / emoji presentation)
    (0xE0020, 0xE007F),  # tag characters of subdivision flags
)

EMOJI_RE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in EMOJI_RANGES) + "]+")


def is_emoji(char: str) -> bool:
    """True for one character that is an emoji or part of an emoji sequence."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in EMOJI_RANGES)


def strip_emoji(text: str) -> str:
    """`text` without emoji (the surrounding spaces are left for the caller to collapse)."""
    return EMOJI_RE.sub("", text)
