"""Text normalisation so every observation fits the observation space's charset."""

from __future__ import annotations

import re
import string
import unicodedata

#: Characters observation and action text may contain: printable ASCII plus newline and tab.
#: Terminal output is normalised into this set (see :func:`normalise_text`).
CHARSET: str = string.printable.replace("\x0b", "").replace("\x0c", "")
_CHARSET_SET = frozenset(CHARSET)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]")


def normalise_text(text: str | bytes) -> str:
    """Map arbitrary terminal output onto :data:`CHARSET`.

    ANSI escapes are dropped, ``\\r\\n`` becomes ``\\n``, accented letters lose their accents
    (``é`` → ``e``) and any other character becomes ``?``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    if all(c in _CHARSET_SET for c in text):
        return text
    out = []
    for ch in text:
        if ch in _CHARSET_SET:
            out.append(ch)
            continue
        folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
        folded = "".join(c for c in folded if c in _CHARSET_SET)
        out.append(folded if folded else "?")
    return "".join(out)


def clip_text(text: str, limit: int, *, what: str = "output") -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, with a visible marker."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {what} truncated: {len(text) - limit} characters omitted ...]\n"
    keep = max(0, limit - len(marker))
    head = keep * 2 // 3
    tail = keep - head
    return text[:head] + marker + (text[-tail:] if tail else "")
