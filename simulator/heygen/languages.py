"""The target languages of HeyGen's routes: HeyGen's English names, each with the BCP 47 tag of its language.

The names are the ones the languages routes list and the submission routes accept (case does not matter);
a job keeps the name as its `target_language`, and its result file is tagged from it by `simulator.media`
(`tests/test_heygen.py` checks that every name resolves to the language its tag says).
"""

from __future__ import annotations

LANGUAGES: dict[str, str] = {
    "English": "en",
    "English (United States)": "en-US",
    "English (United Kingdom)": "en-GB",
    "English (Australia)": "en-AU",
    "English (India)": "en-IN",
    "Spanish": "es",
    "Spanish (Spain)": "es-ES",
    "Spanish (Mexico)": "es-MX",
    "French": "fr",
    "French (France)": "fr-FR",
    "French (Canada)": "fr-CA",
    "German": "de",
    "German (Germany)": "de-DE",
    "Italian": "it",
    "Portuguese": "pt",
    "Portuguese (Brazil)": "pt-BR",
    "Portuguese (Portugal)": "pt-PT",
    "Dutch": "nl",
    "Polish": "pl",
    "Turkish": "tr",
    "Russian": "ru",
    "Ukrainian": "uk",
    "Swedish": "sv",
    "Danish": "da",
    "Norwegian": "no",
    "Finnish": "fi",
    "Czech": "cs",
    "Greek": "el",
    "Hungarian": "hu",
    "Romanian": "ro",
    "Bulgarian": "bg",
    "Croatian": "hr",
    "Slovak": "sk",
    "Japanese": "ja",
    "Korean": "ko",
    "Chinese": "zh",
    "Chinese (Mandarin, Simplified)": "zh-Hans",
    "Chinese (Cantonese, Traditional)": "yue-Hant",
    "Chinese (Taiwanese Mandarin, Traditional)": "zh-Hant-TW",
    "Hindi": "hi",
    "Bengali": "bn",
    "Tamil": "ta",
    "Telugu": "te",
    "Urdu": "ur",
    "Arabic": "ar",
    "Arabic (Saudi Arabia)": "ar-SA",
    "Hebrew": "he",
    "Persian": "fa",
    "Indonesian": "id",
    "Malay": "ms",
    "Thai": "th",
    "Vietnamese": "vi",
    "Filipino": "fil",
}
_BY_FOLDED = {name.casefold(): name for name in LANGUAGES}


def language_names() -> list[str]:
    """Return the names the languages routes list, in their order."""
    return list(LANGUAGES)


def canonical(name: str) -> str | None:
    """Return the listed spelling of a language name (any case), or None when it is not supported."""
    return _BY_FOLDED.get(name.strip().casefold())

