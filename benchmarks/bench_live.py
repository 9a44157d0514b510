#!/usr/bin/env python3
"""Streaming transcription (`svt.LiveTranscriber`) beside the offline one: same model, same run.

    python benchmarks/bench_live.py [DATA_DIR] [--limit N] [--generated 6] [--seconds 15] \
        [--latencies 0.1,0.25,0.5,1.0] [--stream-minutes 60] [--threads 1] [--json OUT]

DATA_DIR (optional) holds recordings in the SSVD layout (`<id>.wav|.flac` + `<id>.txt`, `onset
offset midi`); `--generated N` adds N generated songs (`svt.synthetic.recorded_singing`, every
articulation, `--seconds` long). Every recording is converted to 16 kHz mono once; the offline
transcriber (`svt.transcribe`) and the LiveTranscriber at each latency budget read the same
samples; the live one gets them in blocks of `--block` seconds (the resolution of the delays).

Per set and system: mir_eval note F1 (%, 50 ms / 50 cents, per-song mean) for COnPOff, COnP, COn,
COff; CPU seconds per second of audio (process time, `--threads` torch threads); the delay from a
reference note's onset (audio time) to the start event of the live note matched to it (onset
within 50 ms), median and 90th percentile, and the delay from each start event's own onset time to
the moment it was made (how much audio had been pushed), median and maximum.

`--hop`, `--left-context`, `--level-horizon` override `svt.inference.live.stream_geometry`'s
choices (for every latency) to compare other splits of the budget.

`--stream-minutes M` then pushes M minutes of audio (the recordings looped) through one
LiveTranscriber at `--stream-latency` and reports the resident memory (VmRSS) after each tenth of
the stream, its growth after the first tenth, and the CPU per second over the whole stream.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = ("COnPOff", "COnP", "COn", "COff")


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_folder(folder: Path, limit=None) -> dict:
    """{song: (16 kHz samples, reference notes)} of an SSVD-layout folder."""
    from svt.audio import read_audio
    from svt.notes.formats import read_onset_offset_midi

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac")
                   and p.with_suffix(".txt").exists())
    if not files:
        raise SystemExit(f"{folder}: no <id>.wav/.flac with <id>.txt beside it (SSVD layout)")
    return {p.stem: (read_audio(p), read_onset_offset_midi(p.with_suffix(".txt")))
            for p in files[:limit]}


def generated_songs(count: int, seconds: float, seed: int = 11) -> dict:
    from svt.synthetic.recorded_singing import CorpusStyle, render_recorded_song

    songs = {}
    for k in range(count):
        notes, audio, _ = render_recorded_song([seed, k], seconds, CorpusStyle.mixed())
        songs[f"gen{k:02d}"] = (audio, notes)
    return songs


def stream(live, wav, block: int):
    """Push `wav` (16 kHz) in blocks; (events, notes, cpu seconds)."""
    start = time.process_time()
    events = []
    for i in range(0, len(wav), block):
        events += live.push(wav[i:i + block], 16000)
    events += live.flush()
    return events, live.notes, time.process_time() - start


def delays(reference, events, tolerance=0.05):
    """Seconds from each reference onset to the start event of the live note matched to it (the
    nearest start within the onset tolerance, each used once), and from each start event's own
    onset to when it was made."""
    starts = [e for e in events if e.kind == "start"]
    own = [e.emitted_at - e.time for e in starts]
    times = np.array([e.time for e in starts])
    used, matched = set(), []
    for onset in np.asarray(reference)[:, 0] if len(reference) else []:
        if not len(times):
            break
        order = np.argsort(np.abs(times - onset))
        for k in order:
            if abs(times[k] - onset) > tolerance:
                break
            if k not in used:
                used.add(k)
                matched.append(starts[k].emitted_at - onset)
                break
    return matched, own


def f1s(reference, estimate):
    from svt.notes.scoring import score_song

    scores = score_song(reference, estimate)
    return [100 * scores[f"{m}_f1"] for m in METRICS]


def run_set(name, songs, model, latencies, block, options):
    import svt
    from svt.inference.live import LiveTranscriber

    rows = {}
    seconds = sum(len(w) for w, _ in songs.values()) / 16000
    offline_scores, cpu = [], 0.0
    offline_notes = {}
    for song, (wav, ref) in songs.items():
        t = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notes = svt.transcribe(wav, 16000, model=model)
        cpu += time.process_time() - t
        offline_notes[song] = notes
        offline_scores.append(f1s(ref, notes))
    rows["offline"] = {"f1": np.mean(offline_scores, 0).tolist(), "cpu_per_s": cpu / seconds}
    for latency in latencies:
        live = LiveTranscriber(model, latency=latency, **options)
        scores, agreement, cpu, ref_delays, own_delays = [], [], 0.0, [], []
        for song, (wav, ref) in songs.items():
            live.reset()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                events, notes, used = stream(live, wav, block)
            cpu += used
            scores.append(f1s(ref, notes))
            agreement.append(f1s(offline_notes[song], notes) if len(offline_notes[song])
                             else [np.nan] * 4)
            matched, own = delays(ref, events)
            ref_delays += matched
            own_delays += own
        rows[f"live {latency:g}"] = {
            "f1": np.mean(scores, 0).tolist(), "cpu_per_s": cpu / seconds,
            "f1_vs_offline": np.nanmean(agreement, 0).tolist(),
            "delay_median": float(np.median(ref_delays)) if ref_delays else None,
            "delay_p90": float(np.percentile(ref_delays, 90)) if ref_delays else None,
            "event_delay_median": float(np.median(own_delays)) if own_delays else None,
            "event_delay_max": float(np.max(own_delays)) if own_delays else None,
            "geometry": live.geometry.describe()}
        print(f"  {name}: live {latency:g} done", file=sys.stderr, flush=True)
    return {"songs": len(songs), "seconds": seconds, "rows": rows}


def print_set(name, result):
    print(f"\n{name}: {result['songs']} recordings, {result['seconds'] / 60:.1f} min")
    print(f"{'system':<12}" + "".join(f"{m:>9}" for m in METRICS)
          + f"{'cpu s/s':>9}{'delay med':>11}{'p90':>7}{'event med':>11}{'max':>7}"
          + "   F1 vs offline (COnPOff/COnP/COn/COff)")
    for system, row in result["rows"].items():
        line = f"{system:<12}" + "".join(f"{v:>9.1f}" for v in row["f1"]) \
            + f"{row['cpu_per_s']:>9.3f}"
        if "delay_median" in row:
            fmt = (lambda v: f"{v:>7.3f}" if v is not None else f"{'-':>7}")
            line += f"{'':>4}{fmt(row['delay_median'])}{fmt(row['delay_p90'])}{'':>4}" \
                    f"{fmt(row['event_delay_median'])}{fmt(row['event_delay_max'])}   " \
                    + "/".join(f"{v:.1f}" for v in row["f1_vs_offline"])
        print(line)


def memory_stream(model, songs, minutes, latency, options):
    """RSS over `minutes` of the recordings looped through one LiveTranscriber."""
    from svt.inference.live import LiveTranscriber

    audio = np.concatenate([w for w, _ in songs.values()])
    total = int(minutes * 60 * 16000)
    block = 8000
    live = LiveTranscriber(model, latency=latency, **options)
    marks, pushed, events = [], 0, 0
    step = max(block, total // 10)
    next_mark = step
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while pushed < total:
            offset = pushed % len(audio)
            piece = audio[offset:offset + min(block, total - pushed)]
            events += len(live.push(piece, 16000))
            pushed += len(piece)
            if pushed >= next_mark:
                marks.append((pushed / 16000 / 60, rss_mb()))
                next_mark += step
        events += len(live.flush())
    cpu = time.process_time() - start
    first = marks[0][1]
    return {"minutes": minutes, "latency": latency, "rss_mb": marks,
            "growth_after_first_tenth_mb": max(m for _, m in marks) - first,
            "cpu_per_s": cpu / (total / 16000), "events": events,
            "notes": int(len(live.notes))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", help="SSVD-layout folder (optional)")
    parser.add_argument("--limit", type=int, default=None, help="first N recordings of DATA_DIR")
    parser.add_argument("--generated", type=int, default=6, help="generated songs (0: none)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of a generated song")
    parser.add_argument("--latencies", default="0.1,0.25,0.5,1.0")
    parser.add_argument("--block", type=float, default=0.01, help="seconds per push")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--hop", type=float, default=None,
                        help="seconds of frames a step makes final (default: half the latency)")
    parser.add_argument("--left-context", type=float, default=None)
    parser.add_argument("--level-horizon", type=float, default=None)
    parser.add_argument("--stream-minutes", type=float, default=0.0,
                        help="minutes of the memory test (0: skip; the issue's test is 60)")
    parser.add_argument("--stream-latency", type=float, default=0.3)
    parser.add_argument("--model", default=None, help="bundle (default: the shipped model)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    from svt.inference.bundle import DEFAULT_MODEL, load_bundle

    torch.set_num_threads(args.threads)
    model = load_bundle(args.model or DEFAULT_MODEL)
    latencies = [float(x) for x in args.latencies.split(",") if x]
    block = max(1, int(round(args.block * 16000)))
    options = {k: v for k, v in (("hop", args.hop), ("left_context", args.left_context),
                                 ("level_horizon", args.level_horizon)) if v is not None}
    sets = {}
    if args.data_dir:
        sets[Path(args.data_dir).name] = load_folder(Path(args.data_dir), args.limit)
    if args.generated:
        sets["generated"] = generated_songs(args.generated, args.seconds)
    results = {"threads": args.threads, "block_s": block / 16000, "options": options, "sets": {}}
    for name, songs in sets.items():
        results["sets"][name] = run_set(name, songs, model, latencies, block, options)
        print_set(name, results["sets"][name])
    if args.stream_minutes > 0:
        songs = {k: v for s in sets.values() for k, v in s.items()}
        mem = memory_stream(model, songs, args.stream_minutes, args.stream_latency, options)
        results["memory_stream"] = mem
        print(f"\nmemory over a {mem['minutes']:g}-minute stream at latency {mem['latency']:g} s: "
              "RSS (MB) at " + ", ".join(f"{m:.0f} min {r:.0f}" for m, r in mem["rss_mb"])
              + f"; growth after the first tenth {mem['growth_after_first_tenth_mb']:.1f} MB; "
              f"{mem['cpu_per_s']:.3f} CPU s per s; {mem['notes']} notes")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
