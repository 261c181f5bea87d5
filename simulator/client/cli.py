"""The command line: `python client.py …` or `translation-client …` (see --help)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulator.client.errors import (
    APIError,
    ProtocolError,
    ServerError,
    TransportError,
    WaitTimeoutError,
)
from simulator.client.job import Job
from simulator.client.progress import ProgressBoard, TransferBar
from simulator.client.sync import DEFAULT_URL, TranslationClient
from simulator.client.transfer import Upload

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_API_ERROR, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C

EPILOG = (
    "Exit codes: 0 done (job completed), 1 job failed or was cancelled, 2 usage error, 3 timed out, "
    "4 refused by the server (4xx), 5 server unreachable, failing (5xx) or not this API, 130 interrupted. "
    "Without --timeout a wait gives up (exit 5) once the server has not answered for 30 s."
)


def parse_config_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn KEY=VALUE arguments into settings (values read as JSON where they parse); ValueError if malformed."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare word, such as manual
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            # NaN and Infinity parse but cannot be sent: refuse them here, not as a transport error.
            raise ValueError(f"{name}: {text!r} is not a finite number") from None
        changes[name] = value
    return changes


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        description="Command line of the video translation simulator's client.",
        epilog=EPILOG,
    )
    parser.add_argument("--url", default=os.environ.get("TRANSLATION_URL", DEFAULT_URL),
                        help="server URL (env TRANSLATION_URL; default %(default)s)")
    parser.add_argument("--token", default=os.environ.get("ADMIN_TOKEN"),
                        help="admin token for cancel/process/cleanup/config changes (env ADMIN_TOKEN)")
    parser.add_argument("--user", default=os.environ.get("TRANSLATION_USER_ID"),
                        help="X-User-Id to act as (env TRANSLATION_USER_ID)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--request-timeout", type=float, default=10.0,
                        help="total time one request may take, connecting and reading included, s")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("submit", help="submit a job (and optionally wait for it)")
    p.add_argument("--role", choices=("free", "premium"), default="free")
    p.add_argument("--video-url")
    p.add_argument("--file", type=Path, help="upload this video first and translate it")
    p.add_argument("--lang", dest="target_language", help="target language, e.g. de")
    p.add_argument("--idempotency-key")
    p.add_argument("--simulate", type=json_object_arg, metavar="JSON",
                   help='script the job\'s outcomes, e.g. \'{"outcomes": ["fail", "succeed"]}\'')
    p.add_argument("--wait", action="store_true", help="wait until the job is finished")
    p.add_argument("--download", type=Path, metavar="PATH",
                   help="with --wait: download the result to PATH (a file, or a folder for the server's name)")
    p.add_argument("--timeout", type=float, help="give up after this many seconds, submission included")

    p = sub.add_parser("upload", help="upload a video (with a progress bar); prints its upload id")
    p.add_argument("file", type=Path)

    p = sub.add_parser("download", help="download a completed job's video (resumes after a dropped connection)")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", type=Path, default=Path("."),
                   help="a file, or a folder for the server's name (default: the current folder)")

    p = sub.add_parser("status", help="show a job (the newest one without an id)")
    p.add_argument("job_id", nargs="?")

    p = sub.add_parser("wait", help="wait until jobs are finished, with a progress bar per job")
    p.add_argument("job_ids", nargs="+", metavar="job_id")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")

    p = sub.add_parser("cancel", help="cancel a job (admin)")
    p.add_argument("job_id")
    p.add_argument("--reason")

    p = sub.add_parser("jobs", help="list jobs grouped by status and role")
    p.add_argument("--user-id", help="only this user's jobs")

    sub.add_parser("queue", help="show the queue in start order")

    p = sub.add_parser("process", help="start the next queued jobs (admin)")
    p.add_argument("--count", type=int, default=1)

    p = sub.add_parser("cleanup", help="remove finished jobs (admin)")
    p.add_argument("--status", action="append", dest="statuses",
                   choices=("completed", "permanently_failed", "cancelled"), help="repeatable; default completed")
    p.add_argument("--older-than", type=float, help="only jobs finished at least this many seconds ago")

    p = sub.add_parser("config", help="show the settings, or change them (admin): config KEY=VALUE ...")
    p.add_argument("changes", nargs="*", metavar="KEY=VALUE")

    sub.add_parser("clock", help="show the server's clock: its kind, the simulated now, the next event (admin)")

    p = sub.add_parser("advance", help="move a manual clock (CLOCK=manual) forward, running what falls due (admin)")
    p.add_argument("seconds", type=float)

    p = sub.add_parser("reset", help="leave the server as freshly started: no jobs, start-up settings (admin)")
    p.add_argument("--keep-config", action="store_true", help="keep the runtime settings as they are")

    p = sub.add_parser("requests", help="list (or --count) the requests the server recorded, filtered (admin)")
    p.add_argument("--path", help="a path or route such as /status/{job_id}; a * at the end matches a prefix")
    p.add_argument("--method")
    p.add_argument("--status", type=int)
    p.add_argument("--user-id")
    p.add_argument("--since", help="ISO 8601 time with a zone, or epoch seconds (server time)")
    p.add_argument("--limit", type=int, help="only the last N")
    p.add_argument("--count", action="store_true", help="print only how many")

    p = sub.add_parser("listen", help="receive webhooks and print each verified event (Ctrl-C stops)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"),
                   help="the endpoint's signing secret, or the server's WEBHOOK_SECRET (env WEBHOOK_SECRET)")
    p.add_argument("--count", type=int, help="stop after this many events")
    return parser


def listen(args: argparse.Namespace, out: Any, err: Any) -> int:
    """Receive webhooks until Ctrl-C (or --count events), printing each verified event on one line."""
    from simulator.client.webhooks import ReceivedEvent, WebhookReceiver

    if not args.secret:
        err.write("error: listen needs --secret (or WEBHOOK_SECRET): the endpoint's signing secret\n")
        return EXIT_USAGE

    def show(received: ReceivedEvent) -> None:
        if args.json:
            line = json.dumps({"webhook_id": received.webhook_id, "received_at": received.received_at,
                               **received.event})
        else:
            data = received.event.get("event_data") or received.event.get("data") or {}
            job = data.get("video_translate_id") or data.get("job_id") or "?"
            line = f"{received.webhook_id}  {received.event_type}  {job}"
        out.write(line + "\n")
        out.flush()

    try:
        receiver = WebhookReceiver(args.secret, host=args.host, port=args.port, on_event=show)
    except OSError as e:
        err.write(f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}\n")
        return EXIT_USAGE
    code = EXIT_OK
    with receiver:
        err.write(f"Listening on {receiver.url}\n")
        err.flush()
        try:
            while args.count is None or len(receiver.events) < args.count:
                receiver.wait_for(len(receiver.events) + 1, timeout=1.0)
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
    err.write(f"received {len(receiver.events)} event(s); {receiver.duplicates} duplicate(s) dropped, "
              f"{receiver.rejected} refused (bad signature)\n")
    return code


def json_object_arg(text: str) -> dict[str, Any]:
    """Parse a command-line JSON object (argparse reports the ValueError as a usage error)."""
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def describe_clock(clock: dict[str, Any]) -> str:
    """Return one line about the server's clock."""
    line = f"{clock['clock']} clock, now {clock['now']}"
    if clock.get("next_event_at"):
        line += f", next event in {clock['next_event_in_seconds']:.3f} s ({clock['next_event_at']})"
    if "advanced_seconds" in clock:
        line += f"; advanced {clock['advanced_seconds']:g} s, {clock['changes']} job change(s)"
    return line


def describe(job: Job) -> str:
    """Return one line about a job: id, status, role, progress, and what else is known."""
    parts = [f"{job.job_id}  {job.status}  {job.role}  progress {job.progress}%"]
    if job.queue_position:
        parts.append(f"queue position {job.queue_position}")
    if job.eta_seconds is not None:
        parts.append(f"eta {job.eta_seconds:.1f}s")
    if job.error:
        parts.append(f"error {job.error.get('code')}")
    if job.cancel_reason:
        parts.append(f"reason: {job.cancel_reason}")
    return "  ".join(parts)


def job_exit(jobs: Iterable[Job]) -> int:
    """Return 0 if every job completed, else 1."""
    return EXIT_OK if all(j.completed for j in jobs) else EXIT_JOB_FAILED


def describe_upload(upload: Upload) -> str:
    """Return one line about an upload: id, name, duration, container, picture and sound."""
    video = upload.video
    sound = f"{upload.audio['codec']} ({upload.audio.get('language') or 'no language tag'})" if upload.audio \
        else "no sound"
    return (f"{upload.upload_id}  {upload.filename}  {upload.duration_seconds:.1f}s  {upload.container}  "
            f"{video.get('codec')} {video.get('width')}x{video.get('height')}  {sound}")


def _transfer_bar(args: argparse.Namespace, label: str) -> TransferBar | None:
    return None if args.json else TransferBar(sys.stderr, label)


def _upload(args: argparse.Namespace, tc: TranslationClient, path: Path) -> Upload:
    bar = _transfer_bar(args, f"upload {path.name}")
    try:
        return tc.upload(path, on_progress=bar)
    finally:
        if bar is not None:
            bar.close()


def _download(args: argparse.Namespace, tc: TranslationClient, job: Job | str, path: Path) -> Path:
    bar = _transfer_bar(args, f"download {(job.job_id if isinstance(job, Job) else job)[:8]}")
    try:
        return tc.download_result(job, path, on_progress=bar)
    finally:
        if bar is not None:
            bar.close()


def _run(args: argparse.Namespace, tc: TranslationClient, board: ProgressBoard | None) -> tuple[Any, str, int]:
    """Carry out one command; return its JSON, its text and its exit code."""
    progress = board.update if board is not None else None
    if args.command == "submit":
        started = time.monotonic()
        upload = _upload(args, tc, args.file) if args.file is not None else None
        left = None if args.timeout is None else max(0.0, args.timeout - (time.monotonic() - started))
        job = tc.submit(args.role, video_url=args.video_url, target_language=args.target_language,
                        idempotency_key=args.idempotency_key, timeout=left if args.wait else None,
                        simulate=args.simulate, upload_id=upload.upload_id if upload else None)
        if not args.wait:
            return job.raw, job.job_id, EXIT_OK
        if board is not None:
            board.start()
        left = None if args.timeout is None else max(0.0, args.timeout - (time.monotonic() - started))
        job = tc.wait_for_all([job], timeout=left, on_progress=progress)[job.job_id]
        if board is not None:
            board.close()
        text = describe(job)
        if args.download is not None and job.completed:
            text += f"\nsaved {_download(args, tc, job, args.download)}"
        return job.raw, text, job_exit([job])
    if args.command == "upload":
        upload = _upload(args, tc, args.file)
        return upload.raw, describe_upload(upload), EXIT_OK
    if args.command == "download":
        saved = _download(args, tc, args.job_id, args.output)
        return {"job_id": args.job_id, "path": str(saved), "size_bytes": saved.stat().st_size}, str(saved), EXIT_OK
    if args.command == "status":
        job = tc.get_status(args.job_id) if args.job_id else tc.newest()
        return job.raw, describe(job), EXIT_OK
    if args.command == "wait":
        finals = tc.wait_for_all(args.job_ids, timeout=args.timeout, on_progress=progress)
        return ({k: v.raw for k, v in finals.items()}, "\n".join(describe(j) for j in finals.values()),
                job_exit(finals.values()))
    if args.command == "cancel":
        answer = tc.cancel_job(args.job_id, args.reason)
        return answer, answer["message"], EXIT_OK
    if args.command == "jobs":
        grouped = tc.list_jobs(args.user_id)
        lines = [f"{status:<19} {role:<8} {len(by_id)}" for status, roles in grouped.items()
                 for role, by_id in roles.items() if by_id]
        return grouped, "\n".join(lines) or "no jobs", EXIT_OK
    if args.command == "queue":
        q = tc.queue()
        lines = [f"mode {q['mode']}, workers {q['workers']}, running {len(q['running'])}, queued {len(q['queued'])}"]
        lines += [f"  {j['queue_position']:>4}. {j['job_id']}  {j['role']}" for j in q["queued"]]
        return q, "\n".join(lines), EXIT_OK
    if args.command == "process":
        started_jobs = tc.process_jobs(args.count)
        text = "\n".join(f"started {j.job_id} ({j.role})" for j in started_jobs) or "nothing to start"
        return [j.raw for j in started_jobs], text, EXIT_OK
    if args.command == "cleanup":
        removed = tc.cleanup(args.statuses, args.older_than)
        return {"removed": removed}, f"removed {removed} job(s)", EXIT_OK
    if args.command in ("clock", "advance"):
        clock = tc.advance_clock(args.seconds) if args.command == "advance" else tc.get_clock()
        return clock, describe_clock(clock), EXIT_OK
    if args.command == "reset":
        answer = tc.reset(keep_config=args.keep_config)
        kept = "kept" if args.keep_config else "restored"
        return answer, f"reset: removed {answer['removed']} job(s), settings {kept}", EXIT_OK
    if args.command == "requests":
        filters = {"path": args.path, "method": args.method, "status": args.status, "user_id": args.user_id,
                   "since": args.since}
        if args.count:
            counted = tc.count_requests(**filters)
            return {"count": counted}, str(counted), EXIT_OK
        entries = tc.request_journal(**filters, limit=args.limit)
        lines = [f"{e['at']}  {e['method']:<6} {e['status']}  {e['path']}{'?' + e['query'] if e['query'] else ''}"
                 f"  {e['user_id']}  {e['duration_ms']:.1f} ms" for e in entries]
        return entries, "\n".join(lines) or "no requests", EXIT_OK
    settings = tc.update_config(**parse_config_pairs(args.changes)) if args.changes else tc.get_config()
    return settings, "\n".join(f"{k} = {v}" for k, v in settings.items()), EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "submit" and args.download is not None and not args.wait:
        parser.error("submit --download needs --wait")
    out, err = sys.stdout, sys.stderr
    if args.command == "listen":
        return listen(args, out, err)
    waits = args.command == "wait" or (args.command == "submit" and args.wait)
    board = ProgressBoard(err, getattr(args, "job_ids", ())) if waits and not args.json else None
    if board is not None and args.command == "wait":
        board.start()  # submit starts its board once the upload's bar is done

    def fail(message: str, code: int) -> int:
        if board is not None:
            board.close()  # ends an open progress line first, or the message is glued to the bar
        err.write(message + "\n")
        return code

    try:
        with TranslationClient(args.url, user_id=args.user, admin_token=args.token,
                               timeout=args.request_timeout) as tc:
            data, text, code = _run(args, tc, board)
    except ProtocolError as e:
        return fail(f"error: {e}", EXIT_UNREACHABLE)
    except TransportError as e:  # ServerUnreachableError included: the server is why time ran out
        return fail(f"error: {e}", EXIT_UNREACHABLE)
    except WaitTimeoutError as e:
        return fail(f"timeout: {e}", EXIT_TIMEOUT)
    except ValueError as e:
        return fail(f"error: {e}", EXIT_USAGE)
    except ServerError as e:
        return fail(f"error: {e}", EXIT_UNREACHABLE)
    except APIError as e:
        return fail(f"error: {e}", EXIT_API_ERROR)
    except (KeyError, TypeError) as e:  # JSON, but not this API's: another service on that port?
        return fail(f"error: {args.url} is not the translation API: unexpected answer ({e!r})", EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except OSError as e:  # a local file: missing, unreadable, or a folder that cannot be written
        return fail(f"error: {e.strerror or e}: {e.filename}" if e.filename else f"error: {e}", EXIT_USAGE)
    if board is not None:
        board.close()
    out.write((json.dumps(data, indent=2, default=str) if args.json else text) + "\n")
    return code
