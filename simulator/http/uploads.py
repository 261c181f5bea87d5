"""Reading an upload's body as a stream of chunks: a raw video body, or the `file` part of multipart/form-data.

Neither form is ever held whole in memory: chunks of the request stream go on as they arrive. Multipart bodies
are parsed with Werkzeug's sans-IO `MultipartDecoder` rather than `request.files`, which would first spool the
whole file to a temporary file of its own, outside DATA_DIR and its byte budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble

from simulator.http.errors import ApiError

#: Bytes a multipart body may carry besides the file: boundaries, part headers, other (ignored) fields.
MULTIPART_ALLOWANCE = 64 * 1024
#: The form field that carries the video.
FILE_FIELD = "file"
#: Raw bodies: any video/* type, or bytes of no declared kind (the probe decides what they are).
RAW_TYPES = ("video/", "application/octet-stream")


@dataclass
class UploadBody:
    """An upload as it arrives: the sender's file name, the video's size if declared, and its bytes in chunks."""

    filename: str | None
    content_length: int | None  # of the video itself (raw bodies); None when unknown
    chunks: Iterator[bytes]


def upload_body(request: Request, chunk_bytes: int) -> UploadBody:
    """Return the upload a request carries, reading only up to the video's first bytes; 4xx ApiError otherwise."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise ApiError(400, "malformed_multipart", "multipart/form-data needs a boundary parameter.")
        return _multipart(_stream(request), boundary.encode("latin-1", "replace"), chunk_bytes)
    if mimetype.startswith(RAW_TYPES):
        _, params = parse_options_header(request.headers.get("Content-Disposition", ""))
        filename = request.args.get("filename") or params.get("filename")
        return UploadBody(filename, request.content_length, _raw(_stream(request), chunk_bytes))
    shown = mimetype or "no Content-Type"
    raise ApiError(415, "unsupported_content_type",
                   f"Send the video as multipart/form-data with a '{FILE_FIELD}' field (curl -F file=@talk.mp4) or "
                   f"as a raw body with a video/* Content-Type, not {shown}.")


def _stream(request: Request) -> BinaryIO:
    try:
        return request.stream  # checks Content-Length against the route's limit before reading anything
    except RequestEntityTooLarge:
        limit = request.max_content_length
        raise ApiError(413, "upload_too_large",
                       f"The body is {request.content_length} bytes; uploads may be {limit} bytes at most.",
                       max_bytes=limit) from None


def _read(stream: BinaryIO, size: int) -> bytes:
    try:
        return stream.read(size)
    except ClientDisconnected:
        raise ApiError(400, "upload_incomplete", "The body ended before its Content-Length; nothing was kept.") \
            from None
    except RequestEntityTooLarge:
        raise ApiError(413, "upload_too_large", "The body passed the upload limit; nothing was kept.") from None


def _raw(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    while chunk := _read(stream, chunk_bytes):
        yield chunk


def _multipart(stream: BinaryIO, boundary: bytes, chunk_bytes: int) -> UploadBody:
    """Read up to the `file` part's first bytes; return its name and a generator of the rest of its bytes."""
    # Its buffer holds at most a chunk and a part's headers: a header block without end is refused with 413.
    decoder = MultipartDecoder(boundary, max_form_memory_size=chunk_bytes + MULTIPART_ALLOWANCE)
    events = _events(decoder, stream, chunk_bytes)
    other_bytes = 0
    in_file = False
    filename: str | None = None
    for event in events:
        if isinstance(event, File) and event.name == FILE_FIELD:
            filename, in_file = event.filename, True
            break
        if isinstance(event, (Preamble, Data)):
            other_bytes += len(event.data)  # parts before the file are read and dropped, within the allowance
            if other_bytes > MULTIPART_ALLOWANCE:
                raise ApiError(413, "upload_too_large", f"The form's parts before '{FILE_FIELD}' take more than "
                               f"{MULTIPART_ALLOWANCE} bytes.", max_bytes=MULTIPART_ALLOWANCE)
        elif isinstance(event, Epilogue):
            break
    if not in_file:
        raise ApiError(422, "validation_error", f"The multipart body has no '{FILE_FIELD}' field with a file.",
                       errors=[{"field": FILE_FIELD, "message": "missing: send the video as a file part"}])
    return UploadBody(filename, None, _file_data(events))


def _file_data(events: Iterator[Field | File | Data | Preamble | Epilogue]) -> Iterator[bytes]:
    for event in events:
        if isinstance(event, Data):
            if event.data:
                yield event.data
            if not event.more_data:
                break  # the part's closing boundary was seen: the file is whole
    else:
        raise ApiError(400, "upload_incomplete", "The multipart body ended inside the file; nothing was kept.")
    # Read what follows (the closing boundary, ignored fields), so that the connection is left at a request's end.
    after = 0
    for event in events:
        after += len(getattr(event, "data", b""))
        if after > MULTIPART_ALLOWANCE:
            return


def _events(decoder: MultipartDecoder, stream: BinaryIO, chunk_bytes: int) -> Iterator[
        Field | File | Data | Preamble | Epilogue]:
    """Yield the decoder's events, feeding it the stream chunk by chunk; a body cut short is a 400."""
    while True:
        try:
            event = decoder.next_event()
        except ValueError as e:  # the body ended (or broke) where the form cannot end
            if decoder.complete:
                raise ApiError(400, "upload_incomplete",
                               "The multipart body ended before its closing boundary; nothing was kept.") from None
            raise ApiError(400, "malformed_multipart", f"The multipart body cannot be parsed: {e}.") from None
        if isinstance(event, NeedData):
            try:
                decoder.receive_data(_read(stream, chunk_bytes) or None)
            except RequestEntityTooLarge:
                raise ApiError(413, "upload_too_large", f"A part's headers take more than {MULTIPART_ALLOWANCE} "
                               "bytes.", max_bytes=MULTIPART_ALLOWANCE) from None
            continue
        yield event
        if isinstance(event, Epilogue):
            return
