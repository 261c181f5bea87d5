"""The media core's costs: a 10-minute 720p upload's result, generated videos, probing, streaming an upload to disk.

    python bench/media.py            # 10-minute 1280x720 input (made once, then reused), 5 rounds
    python bench/media.py --quick    # smoke run: a 16 s input, 1 round

The input is a real H.264 + AAC MP4 of 1280x720 at 25 fps, 2.5 Mbit/s video with B-frames and 2 s GOPs, stereo
AAC at 128 kbit/s: the size and packet count of an ordinary 10-minute talk recording (about 200 MB, 43 000
packets). It is made cheaply — 8 seconds of FFmpeg's `testsrc2` pattern are encoded and their packets repeated
(closed GOPs, so every repetition decodes) — and kept in the system's temporary folder for the next run.

Measured in this process, each `--rounds` times (median and slowest): `probe` of the input, `make_result` of it
(the remux into a tagged MP4 with subtitles, `faststart` included), and `generate_video` of 10 s and of 10 min.
The input was just written or read, so it is in the page cache; one more row remuxes after asking the kernel to
drop the input's cached pages (`posix_fadvise` DONTNEED), so that it is read from the disk. Then a child process
streams the input through `MediaStore.save_upload` (1 MiB chunks from the file, then the probe) and reports its
time and how much its resident memory grew (peak VmHWM minus VmRSS before).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, revision, table
from simulator.media import MediaStore, generate_video, make_result, probe
from simulator.media.samples import write_sample
from simulator.media.synth import SynthSpec

INPUT_SPEC = SynthSpec(
    width=1280, height=720, fps=25, gop_seconds=2, loop_seconds=8, pattern="testsrc2",
    video_options={"preset": "veryfast"}, bframes=3, video_bit_rate=2_500_000,
    channels=2, audio_bit_rate=128_000,
)
CACHE = Path(tempfile.gettempdir()) / "simulator-bench-media"
MB = 1_000_000


def input_video(seconds: int) -> tuple[Path, float | None]:
    """Return the cached input of `seconds` (making it first if needed) and how long making it took (None: reused)."""
    path = CACHE / f"input-1280x720-25fps-{seconds}s-v1.mp4"
    if path.exists():
        return path, None
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    started = time.perf_counter()
    write_sample(partial, seconds=seconds, spec=INPUT_SPEC, faststart=True)
    partial.replace(path)
    return path, time.perf_counter() - started


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages, so the next read comes from the disk (Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(rounds: int, work: Callable[[], object]) -> tuple[list[float], object]:
    """Run `work` `rounds` times; return the durations in seconds and the last answer."""
    durations = []
    answer = None
    for _ in range(rounds):
        started = time.perf_counter()
        answer = work()
        durations.append(time.perf_counter() - started)
    return durations, answer


def resident_kib(field: str) -> int:
    """Return a memory figure of this process from /proc/self/status (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def upload_child(source: str, data_dir: str) -> None:
    """Stream `source` into a new MediaStore and print the time and memory growth as JSON (the child's work)."""
    store = MediaStore(data_dir)
    before = resident_kib("VmRSS")
    started = time.perf_counter()
    with open(source, "rb") as body:
        upload = store.save_upload(body, filename=Path(source).name)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "size_bytes": upload.info.size_bytes,
                      "rss_growth_kib": resident_kib("VmHWM") - before}))


def measure_upload(source: Path) -> dict[str, float]:
    """Run the upload in a child process (its memory peak is its own) and return what it printed."""
    with tempfile.TemporaryDirectory(prefix="bench-media-upload-") as data_dir:
        out = subprocess.run([sys.executable, __file__, "--upload-child", str(source), data_dir],
                             capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def main() -> int:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a 16 s input, 1 round")
    parser.add_argument("--seconds", type=int, default=600, help="input duration, a multiple of 8 (default 600)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--upload-child", nargs=2, metavar=("SOURCE", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upload_child:
        upload_child(*args.upload_child)
        return 0
    seconds, rounds = (16, 1) if args.quick else (args.seconds, args.rounds)
    began = time.perf_counter()

    source, made_in = input_video(seconds)
    info = probe(source)
    print(f"Input: {source} ({info.size_bytes / MB:.1f} MB, {info.duration_seconds:.0f} s, "
          f"{info.video.width}x{info.video.height} {info.video.codec} {info.video.fps:g} fps, "
          f"{info.audio.codec if info.audio else 'no audio'}); "
          + (f"made in {made_in:.1f} s.\n" if made_in is not None else "reused from an earlier run.\n"))

    rows = []
    targets = []
    with tempfile.TemporaryDirectory(prefix="bench-media-") as work:
        out = Path(work)
        probe_times, _ = timed(rounds, lambda: probe(source))
        rows.append(("probe (input)", rounds, probe_times, info.size_bytes, None))
        remux_times, result = timed(rounds, lambda: make_result(source, out / "result", job_id="bench-job",
                                                               language="de"))
        assert result is not None and result.audio is not None and result.audio.language == "deu"
        assert [s.type for s in result.streams] == ["video", "audio", "subtitle"]
        rows.append(("make_result (remux to MP4, tagged, cues)", rounds, remux_times, info.size_bytes,
                     result.size_bytes))
        if hasattr(os, "posix_fadvise"):
            cold_times, _ = timed(rounds, lambda: (drop_from_page_cache(source),
                                                   make_result(source, out / "cold", job_id="bench-job",
                                                               language="de")))
            rows.append(("make_result, input first dropped from the page cache", rounds, cold_times,
                         info.size_bytes, result.size_bytes))
            remux_times = remux_times + cold_times
        for length in (10, 600):
            gen_times, generated = timed(rounds, lambda n=length: generate_video(out / f"gen{n}", seconds=n,
                                                                                 language="de", job_id="bench-job"))
            rows.append((f"generate_video ({length} s, 320x180 10 fps)", rounds, gen_times, None,
                         generated.size_bytes))
            if length == 10:
                targets.append(("generate_video of 10 s", f"{max(gen_times):.3f} s (slowest)", "< 1 s",
                                max(gen_times) < 1))
        length_text = f"{seconds // 60}-minute" if seconds >= 60 else f"{seconds} s"
        targets.insert(0, (f"make_result of the {length_text} 720p input (warm and cold)",
                           f"{max(remux_times):.3f} s (slowest)", "≤ 2 s", max(remux_times) <= 2))

    upload = measure_upload(source)
    rate = upload["size_bytes"] / MB / upload["seconds"]
    growth_mb = upload["rss_growth_kib"] * 1024 / MB
    targets.append(("save_upload: resident memory growth", f"{growth_mb:.1f} MB", "≤ 30 MB", growth_mb <= 30))

    def size(n: int | None) -> str:
        return "" if n is None else f"{n / MB:.1f}"

    print(table(["operation", "rounds", "median s", "max s", "in MB", "out MB"],
                [(name, n, f"{statistics.median(t):.3f}", f"{max(t):.3f}", size(i), size(o))
                 for name, n, t, i, o in rows]))
    print()
    print(table(["upload (child process)", "MB", "s", "MB/s", "RSS growth MB"],
                [("MediaStore.save_upload, 1 MiB chunks from a file, then probe",
                  f"{upload['size_bytes'] / MB:.1f}", f"{upload['seconds']:.3f}", f"{rate:.0f}",
                  f"{growth_mb:.1f}")]))
    print()
    print(table(["target", "figure", "target", "met"], [(a, b, c, "yes" if ok else "NO") for a, b, c, ok in targets],
                align="llll"))
    print(f"\nMachine: {machine()}; {revision()}. Wall time: {time.perf_counter() - began:.0f} s.")
    return 0  # a missed target shows in the table; only errors fail the run, as in the other benchmarks


if __name__ == "__main__":
    sys.exit(main())
