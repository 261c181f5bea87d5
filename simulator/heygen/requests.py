"""The bodies of HeyGen's submission routes, checked field by field as HeyGen documents them.

`parse_v2` reads `POST /v2/video_translate` (`video_url`, exactly one of `output_language` or
`output_languages`, and the optional fields); `parse_v3` reads `POST /v3/video-translations` (`video` as
`{"type": "url", "url"}`, `output_languages`, and the optional fields). Both refuse unknown fields, as
HeyGen's schemas do (`additionalProperties: false`). The simulator acts on the URL, the languages, the
title and the callback fields; the other documented options are checked and accepted, and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.heygen.languages import canonical
from simulator.webhooks.hosts import AllowedHosts, check_destination

MAX_LANGUAGES = 20
MAX_TEXT = 255
MAX_URL = 2048


class InvalidParameter(ValueError):
    """A field of the body is missing or wrong; `param` names it (HeyGen's `param`)."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class TranslationRequest:
    """What a submission asks for: one job per output language."""

    video_url: str
    output_languages: tuple[str, ...]
    title: str | None
    callback_url: str | None
    callback_id: str | None
    translate_audio_only: bool
    batch: bool  # asked with a list of languages (v2's output_languages, always on v3)

    def meta(self, api: str, base_url: str) -> dict[str, Any]:
        """Return what each job carries for HeyGen's views and webhooks (a new dict on every call)."""
        meta: dict[str, Any] = {"api": api, "base_url": base_url}
        for name in ("title", "callback_url", "callback_id"):
            value = getattr(self, name)
            if value is not None:
                meta[name] = value
        if self.translate_audio_only:
            meta["translate_audio_only"] = True
        return meta


Check = Callable[[str, Any], Any]


def _text(max_length: int = MAX_TEXT) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or len(value) > max_length):
            raise InvalidParameter(name, f"'{name}' must be a string of at most {max_length} characters.")
        return value

    return check


def _flag(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise InvalidParameter(name, f"'{name}' must be true or false.")
    return value


def _integer(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise InvalidParameter(name, f"'{name}' must be an integer from {low} to {high}.")
        return value

    return check


def _seconds(name: str, value: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9):
        raise InvalidParameter(name, f"'{name}' must be a number of seconds ≥ 0.")
    return value


def _one_of(*allowed: str) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and value not in allowed:
            raise InvalidParameter(name, f"'{name}' must be one of {', '.join(repr(a) for a in allowed)}.")
        return value

    return check


def _asset(name: str, value: Any) -> Any:
    """Accept v3's asset object: {"type": "url", "url"} (an asset_id names an asset of HeyGen's upload API, which
    this simulator does not have: its own uploads are named by URL)."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("url", "asset_id"):
        raise InvalidParameter(name, f"'{name}' must be {{\"type\": \"url\", \"url\": \"https://…\"}}.")
    if value["type"] == "asset_id":
        raise InvalidParameter(name, f"'{name}': asset_id inputs are not simulated; send {{\"type\": \"url\", "
                                     "\"url\": …}} instead (for a video uploaded here, its /uploads/<id> URL).")
    if set(value) != {"type", "url"}:
        raise InvalidParameter(name, f"'{name}' must hold exactly \"type\" and \"url\".")
    return _http_url(f"{name}.url", value["url"])


def _http_url(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > MAX_URL \
            or len(value) < 10 or any(c.isspace() for c in value):
        raise InvalidParameter(name, f"'{name}' must be an http(s) URL of at most {MAX_URL} characters.")
    return value


_OPTIONAL: dict[str, Check] = {
    "title": _text(),
    "input_language": _text(64),
    "translate_audio_only": _flag,
    "speaker_num": _integer(1, 100),
    "mode": _one_of("speed", "precision"),
    "callback_url": _text(MAX_URL),
    "callback_id": _text(),
    "enable_caption": _flag,
    "keep_the_same_format": _flag,
    "enable_dynamic_duration": _flag,
    "disable_music_track": _flag,
    "enable_speech_enhancement": _flag,
    "enable_watermark": _flag,
    "start_time": _seconds,
    "end_time": _seconds,
    "brand_voice_id": _text(),
    "srt_role": _one_of("input", "output"),
    "fps_mode": _one_of("vfr", "cfr", "passthrough"),
    "folder_id": _text(),
}
V2_FIELDS: dict[str, Check] = {
    "video_url": _text(MAX_URL), "output_language": _text(64), "output_languages": lambda n, v: v,
    "audio_url": _text(MAX_URL), "srt_url": _text(MAX_URL), **_OPTIONAL,
}
V3_FIELDS: dict[str, Check] = {
    "video": _asset, "output_languages": lambda n, v: v, "audio": _asset, "srt": _asset, **_OPTIONAL,
}


def parse_v2(body: Any, allowed_hosts: AllowedHosts) -> TranslationRequest:
    """Read a `POST /v2/video_translate` body, or raise InvalidParameter naming the field."""
    fields = _fields(body, V2_FIELDS)
    if fields.get("video_url") is None:
        raise InvalidParameter("video_url", "'video_url' is required.")
    video_url = _http_url("video_url", fields["video_url"])
    single, many = fields.get("output_language"), fields.get("output_languages")
    if (single is None) == (many is None):
        raise InvalidParameter("output_language", "Send exactly one of 'output_language' (one language) or "
                                                  "'output_languages' (a list).")
    languages = (_language("output_language", single),) if single is not None else _languages(many)
    return _request(fields, video_url, languages, many is not None, allowed_hosts)


def parse_v3(body: Any, allowed_hosts: AllowedHosts) -> TranslationRequest:
    """Read a `POST /v3/video-translations` body, or raise InvalidParameter naming the field."""
    fields = _fields(body, V3_FIELDS)
    if fields.get("video") is None:
        raise InvalidParameter("video", "'video' is required: {\"type\": \"url\", \"url\": \"https://…\"}.")
    if fields.get("output_languages") is None:
        raise InvalidParameter("output_languages", "'output_languages' is required: a list of at least one "
                                                   "language name.")
    return _request(fields, fields["video"], _languages(fields["output_languages"]), True, allowed_hosts)


def _fields(body: Any, checks: Mapping[str, Check]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter(None, "The request body must be a JSON object.")
    fields = {}
    for name, value in body.items():
        check = checks.get(name)
        if check is None:
            raise InvalidParameter(name, f"Unknown field '{name}'.")
        fields[name] = check(name, value)
    start, end = fields.get("start_time"), fields.get("end_time")
    if start is not None and end is not None and end <= start:
        raise InvalidParameter("end_time", "'end_time' must be after 'start_time'.")
    return fields


def _language(name: str, value: Any) -> str:
    listed = canonical(value) if isinstance(value, str) else None
    if listed is None:
        shown = repr(value)[:80]
        raise InvalidParameter(name, f"Unsupported language {shown}; the languages route lists the supported "
                                     "names (e.g. 'Spanish (Spain)').")
    return listed


def _languages(value: Any) -> tuple[str, ...]:
    name = "output_languages"
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LANGUAGES:
        raise InvalidParameter(name, f"'{name}' must be a list of 1 to {MAX_LANGUAGES} language names.")
    languages = tuple(_language(name, item) for item in value)
    if len(set(languages)) != len(languages):
        raise InvalidParameter(name, f"'{name}' names a language twice.")
    return languages


def _request(
    fields: dict[str, Any], video_url: str, languages: tuple[str, ...], batch: bool, allowed_hosts: AllowedHosts
) -> TranslationRequest:
    callback_url = fields.get("callback_url")
    if callback_url is not None:
        why = check_destination(callback_url, allowed_hosts)
        if why is not None:
            raise InvalidParameter("callback_url", f"'callback_url' {why}.")
    return TranslationRequest(
        video_url=video_url,
        output_languages=languages,
        title=fields.get("title"),
        callback_url=callback_url,
        callback_id=fields.get("callback_id"),
        translate_audio_only=bool(fields.get("translate_audio_only")),
        batch=batch,
    )
