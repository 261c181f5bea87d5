"""Target languages as media files tag them: "de", "German", "pt-BR" or "ger" → ISO 639-2 codes and a name.

The jobs' `target_language` is free text (up to 35 characters), so resolving never fails: a name with a qualifier
("Spanish (Spain)", as HeyGen writes them) is the language it names, and a language that cannot
be identified is tagged `und` (ISO 639-2 for "undetermined") and keeps the caller's text as its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pycountry

#: Names and retired codes that people use but ISO 639 spells otherwise (lower case → ISO 639-2/T).
_ALIASES = {
    "greek": "ell",
    "modern greek": "ell",
    "farsi": "fas",
    "iw": "heb",  # retired ISO 639-1 codes that older systems still send
    "in": "ind",
    "malay": "msa",  # ISO 639 names it "Malay (macrolanguage)"
    "ji": "yid",
}
_SUBTAG_SPLIT = re.compile(r"[-_]")
#: An English name with a qualifier, as HeyGen's language names are written: "Spanish (Spain)".
_QUALIFIED_NAME = re.compile(r"(?P<name>[^()]+?) \((?P<qualifier>[^()]+)\)")
_DATED_QUALIFIER = re.compile(r"\s*\(\d[^)]*\)$")


@dataclass(frozen=True)
class Language:
    """A target language: its tag, ISO 639-2 codes (T for MP4, B for Matroska) and English name."""

    tag: str  # what the caller meant, normalised: "de", "pt-BR", "zh-Hans"; the input text when unknown
    iso639_2: str  # ISO 639-2/T (terminology) code: "deu"; "und" when unknown
    iso639_2b: str  # ISO 639-2/B (bibliographic) code: "ger"; the same as iso639_2 for most languages
    name: str  # English name: "German", "Portuguese (Brazil)"

    @property
    def known(self) -> bool:
        """Return whether the language was identified (its code is not `und`)."""
        return self.iso639_2 != "und"


def resolve_language(value: str | None) -> Language:
    """Resolve a language code, BCP 47 tag or English name to a Language; unknown or empty → `und`, never raise."""
    text = (value or "").strip()
    return _resolve(text) if text else Language(tag="und", iso639_2="und", iso639_2b="und", name="Undetermined")


@lru_cache(maxsize=256)
def _resolve(text: str) -> Language:
    entry = _lookup(text)
    region = None
    qualified = _QUALIFIED_NAME.fullmatch(text) if entry is None else None
    if qualified is not None:
        named = _resolve(qualified["name"])
        if named.known:  # "Spanish (Spain)": the language is Spanish; the name stays as the caller wrote it
            return Language(tag=named.tag, iso639_2=named.iso639_2, iso639_2b=named.iso639_2b, name=text)
    if entry is None:
        # A BCP 47 tag: the primary language subtag comes first, then script (4 letters) and region (2 letters).
        primary, *rest = _SUBTAG_SPLIT.split(text)
        entry = _lookup(primary)
        if entry is None:
            return Language(tag=text, iso639_2="und", iso639_2b="und", name=text)
        subtags = [primary.lower()]
        for sub in rest:
            if len(sub) == 4 and sub.isalpha():
                subtags.append(sub.title())
            elif len(sub) == 2 and sub.isalpha():
                subtags.append(sub.upper())
                country = pycountry.countries.get(alpha_2=sub.upper())
                region = getattr(country, "common_name", None) or getattr(country, "name", None)
            else:
                subtags.append(sub)
        tag = "-".join(subtags)
    else:
        tag = getattr(entry, "alpha_2", None) or entry.alpha_3
    code = entry.alpha_3
    name = _display_name(entry) if region is None else f"{_display_name(entry)} ({region})"
    return Language(tag=tag, iso639_2=code, iso639_2b=getattr(entry, "bibliographic", code), name=name)


def _lookup(text: str) -> object | None:
    # Codes first, by their length: a generic lookup would match "en" to the name of the language "En" (enc).
    key = _ALIASES.get(text.lower(), text.lower())
    languages = pycountry.languages
    if len(key) == 2:
        return languages.get(alpha_2=key)
    if len(key) == 3:
        return languages.get(alpha_3=key) or languages.get(bibliographic=key)
    try:
        return languages.lookup(key)
    except LookupError:
        return None


def _display_name(entry: object) -> str:
    name = getattr(entry, "common_name", None) or entry.name  # type: ignore[attr-defined]
    return _DATED_QUALIFIER.sub("", name)  # "Modern Greek (1453-)" → "Modern Greek"
