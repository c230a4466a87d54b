"""What a search box can find a customer's name by: the name itself, without
accents, and for Chinese names their pinyin (full, spaced, initials)."""

from __future__ import annotations

import functools
import re
import unicodedata

from pypinyin import Style, lazy_pinyin

_HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN = re.compile(f"[{_HAN_CHARS}]")
# Runs of Chinese, or words of anything else; punctuation and spaces separate them.
_HAN_RUN_OR_WORD = re.compile(f"[{_HAN_CHARS}]+|[^\\W_{_HAN_CHARS}]+")
# Surnames whose reading differs from the character's everyday one (曾 is zeng, not
# ceng); a name starting with one gets keys for both readings, as it may not be a surname.
_SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "区": "ou", "仇": "qiu", "朴": "piao",
    "查": "zha", "覃": "qin", "翟": "zhai", "缪": "miao", "乐": "yue", "盖": "ge",
    "种": "chong", "召": "shao", "繁": "po", "秘": "bi",
}


def search_keys(name: str) -> list[str]:
    """Keys a search box can match the name by, the lowercased name itself first.

    Chinese: full pinyin with and without spaces and the initials, so "zw",
    "zhangwei" and "zhang wei" all find 张伟. Latin: lowercased, and without
    accents when it has any ("José" is also "jose").
    """
    text = " ".join(unicodedata.normalize("NFKC", name).lower().split())
    if not text:
        return []
    keys = [text]
    if not _HAN.search(text):
        keys.append(_without_accents(text))
        return _unique(keys)
    for syllables in _readings(text):
        keys += [" ".join(syllables), "".join(syllables), "".join(s[0] for s in syllables)]
    return _unique(keys)


def _readings(text: str) -> list[list[str]]:
    everyday = _syllables(text)
    surname = _SURNAME_READINGS.get(text[0])
    if surname is None or not everyday or everyday[0] == surname:
        return [everyday]
    return [[surname, *everyday[1:]], everyday]


def _syllables(text: str) -> list[str]:
    # Whole runs go to pypinyin so that its phrase dictionary picks the reading in context.
    syllables: list[str] = []
    for token in _HAN_RUN_OR_WORD.findall(text):
        if _HAN.match(token):
            syllables += _pinyin_of(token)
        else:
            syllables.append(_without_accents(token))
    return syllables


@functools.lru_cache(maxsize=65_536)
def _pinyin_of(han: str) -> tuple[str, ...]:
    # Names repeat (张伟 is shared by hundreds of thousands); pypinyin's converter is
    # the slowest step of a registration, and its answer for a run never changes.
    return tuple(lazy_pinyin(han, style=Style.NORMAL))


def _without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(k for k in keys if k))
