"""Make text safe to speak: no markdown, no emoji, and words for what TTS models misread.

`normalize_for_speech` is conservative: it rewrites only patterns it is sure about (markdown syntax,
URLs, e-mail addresses, currency, percentages, times, ordinals, plain numbers) and leaves all other
text alone. It is applied to one unit at a time (a sentence from `SpeakableSplitter`) or to a whole
text; the steps are ordered so that earlier ones hide text from later ones (a URL's digits are not
read as numbers, a link's target is not read at all).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from csmstream.text.emoji import strip_emoji
from csmstream.text.numbers import (
    decimal_to_words,
    integer_text_to_words,
    number_to_words,
    ordinal_to_words,
    plural_of_number_words,
    year_to_words,
)


def normalize_for_speech(text: str) -> str:
    """Markdown-free, emoji-free, whitespace-collapsed text with symbols and numbers in words."""
    text = _strip_code(text)
    text = _strip_links(text)
    text = _speak_urls_and_emails(text)
    text = _strip_block_markdown(text)
    text = _strip_inline_markdown(text)
    text = strip_emoji(text)
    text = _expand_abbreviations(text)
    text = _speak_symbols(text)
    text = _speak_currency(text)
    text = _speak_numbers(text)
    return _tidy(text)


# ---- 1. markdown ---------------------------------------------------------------------------------------

_CODE_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+(?=\S)", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_TABLE_SEPARATOR = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE
)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_STRAY_STARS = re.compile(r"\*+")
_TIMES_STAR = re.compile(r"(?<=\d)\s\*\s(?=\d)")
_HASHTAG = re.compile(r"(?<![\w&])#(?=[A-Za-z])")
_NUMBER_SIGN = re.compile(r"(?<![\w&])#(?=\d)")
_SENTENCE_END = re.compile(r"[.!?:;,…]['\")\]]*$")


def _strip_code(text: str) -> str:
    text = _CODE_FENCE.sub("", text)
    return _INLINE_CODE.sub(r"\1", text)


def _strip_links(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return _AUTOLINK.sub(r"\1", text)


def _strip_block_markdown(text: str) -> str:
    """Line syntax: headings, quotes, bullets, rules, tables. Headings and list items get a full stop
    when they have no punctuation, so they are not run together with the next line."""
    text = _RULE.sub("", text)
    text = _TABLE_SEPARATOR.sub("", text)
    lines = []
    for line in text.split("\n"):
        stripped = _QUOTE.sub("", line)
        is_item = bool(
            _HEADING.match(stripped) or _BULLET.match(stripped) or re.match(r"^[ \t]*\d+\.[ \t]", stripped)
        )
        stripped = _HEADING.sub(r"\1", stripped)
        stripped = _BULLET.sub("", stripped)
        if stripped.count("|") >= 2:  # a table row: its cells, as a list
            cells = [cell.strip() for cell in stripped.strip().strip("|").split("|")]
            stripped = ", ".join(cell for cell in cells if cell)
            is_item = True
        stripped = stripped.strip()
        if is_item and stripped and not _SENTENCE_END.search(_strip_inline_markdown(stripped)):
            stripped += "."
        lines.append(stripped)
    return "\n".join(lines)


def _strip_inline_markdown(text: str) -> str:
    for pattern in (_BOLD, _STRIKE):
        text = pattern.sub(r"\2" if pattern is _BOLD else r"\1", text)
    text = _ITALIC_STAR.sub(r"\1", text)
    text = _ITALIC_UNDERSCORE.sub(r"\1", text)
    text = _TIMES_STAR.sub(" times ", text)  # "2 * 3" is arithmetic, not emphasis
    text = _STRAY_STARS.sub("", text)
    text = _NUMBER_SIGN.sub("number ", text)
    return _HASHTAG.sub("", text)


# ---- 2. URLs and e-mail addresses ----------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]", re.IGNORECASE)
_EMAIL = re.compile(r"\b(?:mailto:)?([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\b")


def _spoken_host(host: str) -> str:
    return " dot ".join(part for part in host.split(".") if part)


def _url_to_speech(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    except ValueError:  # malformed ("http://[x"): say nothing rather than read the URL out
        host = ""
    host = host.removeprefix("www.")
    return _spoken_host(host) if host else ""


def _email_to_speech(match: re.Match[str]) -> str:
    user = match.group(1).replace(".", " dot ").replace("_", " underscore ")
    return f"{user} at {_spoken_host(match.group(2))}"


def _speak_urls_and_emails(text: str) -> str:
    text = _URL.sub(_url_to_speech, text)
    return _EMAIL.sub(_email_to_speech, text)


# ---- 3. abbreviations, currency, symbols ---------------------------------------------------------------

_ABBREVIATIONS = (
    (re.compile(r"\be\.g\.,?(?=\s|$)", re.IGNORECASE), "for example,"),
    (re.compile(r"\bi\.e\.,?(?=\s|$)", re.IGNORECASE), "that is,"),
    (re.compile(r"\betc\.(?=\s*$)"), "et cetera."),  # a sentence ending in "etc." keeps its full stop
    (re.compile(r"\betc\.?(?!\w)"), "et cetera"),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
)

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}  # fmt: skip
_MAGNITUDES = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion",
               "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}  # fmt: skip
_MONEY = re.compile(
    r"([$€£])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
    r"(?:\s?(thousand|million|billion|trillion)\b|([kKmMbB]n?)\b)?"
)


def _money_to_speech(match: re.Match[str]) -> str:
    symbol, whole, fraction, magnitude_word, magnitude_suffix = match.groups()
    one, many, cent, cents = _CURRENCIES[symbol]
    magnitude = _MAGNITUDES.get((magnitude_word or magnitude_suffix or "").lower())
    if magnitude:  # "$2.5 million" → "two point five million dollars"
        amount = (
            decimal_to_words(f"{whole.replace(',', '')}.{fraction}")
            if fraction
            else integer_text_to_words(whole)
        )
        return f"{amount} {magnitude} {many}"
    units = int(whole.replace(",", ""))
    if fraction is not None and len(fraction) != 2:  # "$1.5" → "one point five dollars"
        return f"{decimal_to_words(whole.replace(',', '') + '.' + fraction)} {many}"
    hundredths = int(fraction) if fraction else 0
    parts = []
    if units or not hundredths:
        parts.append(f"{integer_text_to_words(whole)} {one if units == 1 else many}")
    if hundredths:
        parts.append(f"{number_to_words(hundredths)} {cent if hundredths == 1 else cents}")
    return " and ".join(parts)


_DEGREES = re.compile(r"(\d)\s?°\s?([CF])\b")
_SYMBOLS = (
    (re.compile(r"(\d)\s?%"), r"\1 percent"),
    (re.compile(r"%"), " percent "),
    (re.compile(r"\s?&\s?"), " and "),
    (re.compile(r"(\d)\s?°"), r"\1 degrees"),
    (re.compile(r"(?<=\d)\s?\+\s?(?=\d)"), " plus "),
    (re.compile(r"(?<=\s)=(?=\s)"), "equals"),
    (re.compile(r"(?<=\d)\s?×\s?(?=\d)"), " times "),
    (re.compile(r"(?<![\w~])~\s?(?=[\d$€£])"), "about "),
    (re.compile(r"(?<=\s)@(?=\s)"), "at"),
)


def _expand_abbreviations(text: str) -> str:
    for pattern, spoken in _ABBREVIATIONS:
        text = pattern.sub(spoken, text)
    return text


def _speak_currency(text: str) -> str:
    return _MONEY.sub(_money_to_speech, text)


def _speak_symbols(text: str) -> str:
    text = _DEGREES.sub(
        lambda m: f"{m.group(1)} degrees {'Celsius' if m.group(2) == 'C' else 'Fahrenheit'}", text
    )
    for pattern, spoken in _SYMBOLS:
        text = pattern.sub(spoken, text)
    return text


# ---- 4. numbers ---------------------------------------------------------------------------------------

_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b(?!:\d)")
_ORDINAL = re.compile(r"\b(\d{1,3}(?:,\d{3})*|\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE = re.compile(r"\b(1[1-9]\d0|20[0-9]0)s\b")
_YEAR_CONTEXT = (
    r"(?:in|since|from|until|till|by|of|year|during|before|after|around|circa|through|between|early|mid|late|"
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
)
_YEAR = re.compile(
    rf"(?i:\b{_YEAR_CONTEXT}\.?,?\s+(?:\d{{1,2}}(?:st|nd|rd|th)?,?\s+)?)(1[1-9]\d\d|20\d\d)\b(?![.,]\d)"
)
# not inside words (H100, mp3), ranges or phone numbers (10-20, 555-1234) or fractions and dates (1/2)
_NUMBER = re.compile(r"(?<![\w.,/])(?<!\d-)(-?)(\d{1,3}(?:,\d{3})+|\d+)((?:\.\d+)+)?(?![\w/]|[.,]\d|-\d)")


def _time_to_speech(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{number_to_words(hours)} o'clock" if hours <= 12 else f"{number_to_words(hours)} hundred"
    spoken_minutes = f"oh {number_to_words(minutes)}" if minutes < 10 else number_to_words(minutes)
    return f"{number_to_words(hours)} {spoken_minutes}"


def _year_to_speech(match: re.Match[str]) -> str:
    prefix = match.group(0)[: match.start(1) - match.start(0)]
    return prefix + year_to_words(int(match.group(1)))


def _number_to_speech(match: re.Match[str]) -> str:
    sign, whole, fraction = match.groups()
    if fraction:
        return decimal_to_words(sign + whole.replace(",", "") + fraction)
    words = integer_text_to_words(whole)
    return f"minus {words}" if sign else words


def _speak_numbers(text: str) -> str:
    text = _TIME.sub(_time_to_speech, text)
    text = _ORDINAL.sub(lambda m: ordinal_to_words(int(m.group(1).replace(",", ""))), text)
    text = _DECADE.sub(lambda m: plural_of_number_words(year_to_words(int(m.group(1)))), text)
    text = _YEAR.sub(_year_to_speech, text)
    return _NUMBER.sub(_number_to_speech, text)


# ---- 5. whitespace and punctuation ---------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,!?;:…])")
_REPEATED_COMMAS = re.compile(r",\s*(?=[,.!?])")


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _REPEATED_COMMAS.sub("", text)
    return text.strip()
