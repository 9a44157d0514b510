#!/usr/bin/env python3
"""Real-recordings benchmark: the shipped transcriber vs pYIN + note rules vs basic-pitch.

    python benchmarks/bench_real.py DATA_DIR [--accompaniment-snr-db 0] [--reverb-rt60 1.0] \
        [--reverb-drr-db 0] [--sung-reference] \
        [--basic-pitch-python /path/to/venv/bin/python] [--model BUNDLE] [--json OUT] \
        [--repeats 3]

DATA_DIR holds recordings with notes in the SSVD layout (`<id>.flac|.wav` + `<id>.txt`, `onset
offset midi`). Every system transcribes the same 16-kHz mono copies, each in its own process, so
the table gives each one's seconds per second of audio, its model-load time and its own peak memory
(max RSS). With --repeats N the systems transcribe everything N times, taking turns; the table
gives the median time, and each system's time against basic-pitch's is the median of the N
rounds' ratios (this machine's speed drifts by 10-20 % within a run, so one round can favour
either). Scores: mir_eval note metrics, 50 ms / 50 cents, per-song mean F1 (%).

Systems:
* ``svt``: `svt.transcribe` with the model shipped in the package (or --model);
  ``svt-float32``: the same with its pitch network computed in float32 instead of with
  bfloat16 products (`svt.inference.bundle.load_bundle`'s `pitch_precision`), not run unless
  named;
* ``pyin``: librosa pYIN + note rules (`svt.baselines.pyin_notes`), each note's median f0 (sung
  pitch); ``pyin-rounded``: the same notes rounded to semitones;
* ``basic-pitch``: Spotify's basic-pitch 0.4.0 on the ONNX model inside its wheel, run with
  --basic-pitch-python (a separate venv: `pip install --no-deps basic-pitch==0.4.0` plus
  onnxruntime, 'resampy<0.4.3', 'setuptools<81', librosa, pretty_midi, mir_eval); skipped when not
  given.

With --sung-reference, each annotated note's pitch is also compared with the pitch sung during it
(the median pYIN f0 over the note's span, `svt.baselines.sung_pitches`, from the clean recording):
the script reports how far the annotations sit from what was sung (median, songs whose notes are
off by more than the 50-cent tolerance) and scores every system a second time against references
whose pitches are the sung ones (onsets and offsets as annotated). A system that follows the
voice is then not charged for an annotation convention or a transposed song.

With --accompaniment-snr-db, each recording is first mixed with a synthetic backing track in the key
of its reference notes (`svt.synthetic.singing.render_accompaniment`, seeded per song) at that
vocals-to-accompaniment SNR.

With --reverb-rt60, each recording is first heard in a room
(`svt.synthetic.recorded_singing.add_room_reverb`, seeded per song): reverberation that decays by
60 dB in that many seconds, --reverb-drr-db below the direct sound (default 0 dB: as much
reverberation as direct sound). A backing track, if asked for too, is mixed in after the room
(a reverberated vocal in a dry mix).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYSTEMS = ("svt", "pyin", "pyin-rounded", "basic-pitch", "svt-float32")
#: What runs when --systems is not given (svt-float32 is the same model computed more slowly).
DEFAULT_SYSTEMS = SYSTEMS[:4]
BASIC_PITCH_WORKER = r"""
import json, resource, sys, time
jobs = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
from basic_pitch.inference import predict
from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model
t1 = time.perf_counter()
model = Model(ICASSP_2022_MODEL_PATH)
load, imports = time.perf_counter() - t1, t1 - t0
out, total = {}, 0.0
for song, path in jobs.items():
    t = time.perf_counter()
    _, _, events = predict(path, model)
    total += time.perf_counter() - t
    out[song] = [[float(s), float(e), float(p)] for s, e, p, *_ in events]
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = (int(hwm[0].split()[1]) if hwm else usage.ru_maxrss) / 1024
json.dump({"notes": out, "seconds": total, "load_seconds": load, "import_seconds": imports,
           "peak_rss_mb": peak},
          open(sys.argv[2], "w"))
"""


def below_clipping(wav) -> np.ndarray:
    """`wav` scaled down to peak at 0.99 where it would clip (a room or a backing track adds to
    the recording's level)."""
    return wav / max(1.0, float(np.max(np.abs(wav))) / 0.99)


def prepare_audio(data_dir: Path, work: Path, snr_db, limit=None, reverb=None):
    """16-kHz mono copies (in a room, `reverb` = (RT60 s, DRR dB), and mixed with accompaniment
    when asked) and the reference notes."""
    from svt.audio import read_audio, write_audio
    from svt.notes.formats import read_onset_offset_midi
    from svt.synthetic.recorded_singing import add_room_reverb
    from svt.synthetic.singing import render_accompaniment

    wavs, references, seconds = {}, {}, 0.0
    audio_files = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in (".flac", ".wav")
                         and p.with_suffix(".txt").exists())
    if not audio_files:
        raise SystemExit(f"{data_dir}: no <id>.flac/.wav with <id>.txt beside it (SSVD layout)")
    for path in audio_files[:limit]:
        song = path.stem
        notes = read_onset_offset_midi(path.with_suffix(".txt"))
        wav = read_audio(path)  # 16 kHz mono float32
        if reverb is not None:
            room_rng = np.random.default_rng([zlib.crc32(song.encode()), 1])
            wav = below_clipping(add_room_reverb(wav, 16000, reverb[0], reverb[1], room_rng))
            wav = wav.astype(np.float32)
        if snr_db is not None:
            written = notes.copy()
            written[:, 2] = np.round(written[:, 2])
            rng = np.random.default_rng(zlib.crc32(song.encode()))
            accomp = render_accompaniment(written, 16000, rng, len(wav) / 16000)[:len(wav)]
            power_ratio = np.mean(wav ** 2) / (np.mean(accomp ** 2) + 1e-12)
            gain = np.sqrt(power_ratio) * 10 ** (-snr_db / 20)
            wav = below_clipping(wav + gain * accomp)
        out = work / f"{song}.wav"
        write_audio(out, wav, 16000)
        wavs[song], references[song] = str(out), notes
        seconds += len(wav) / 16000
    return wavs, references, seconds


def sung_references(data_dir: Path, references: dict) -> dict:
    """The references with each note's pitch replaced by the one sung during it (pYIN on the
    clean recording; the annotated pitch stays where no frame of the note is voiced), and how far
    the annotations sit from it."""
    import warnings

    from svt.audio import read_audio
    from svt.baselines import pyin_contour, sung_pitches

    sung_refs, offsets, songs_off = {}, [], []
    for song, notes in references.items():
        path = next(p for p in (data_dir / f"{song}.flac", data_dir / f"{song}.wav")
                    if p.exists())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pitches = sung_pitches(notes, pyin_contour(read_audio(path)))
        cents = 100 * (notes[:, 2] - pitches)
        known = np.isfinite(cents)
        offsets.append(cents[known])
        if known.any() and abs(np.median(cents[known])) > 50:
            songs_off.append((song, float(np.median(cents[known]))))
        sung_refs[song] = np.c_[notes[:, :2], np.where(known, pitches, notes[:, 2])]
    cents = np.concatenate(offsets) if offsets else np.zeros(0)
    summary = {"notes": int(len(cents)),
               "median_cents": float(np.median(cents)) if len(cents) else None,
               "share_beyond_50_cents": float(np.mean(np.abs(cents) > 50)) if len(cents) else None,
               "songs_median_beyond_50_cents": dict(sorted(songs_off, key=lambda x: x[1]))}
    return {"references": sung_refs, "summary": summary}


def print_sung_reference(sung, rows) -> None:
    summary = sung["summary"]
    if summary["notes"]:
        print(f"\nannotated minus sung pitch (pYIN median over each annotated note, "
              f"{summary['notes']} voiced notes): median {summary['median_cents']:+.1f} cents, "
              f"{100 * summary['share_beyond_50_cents']:.1f} % beyond 50 cents; songs whose "
              f"median is beyond 50 cents: {len(summary['songs_median_beyond_50_cents'])}"
              + "".join(f"\n  {song}: {c:+.0f} cents"
                        for song, c in summary["songs_median_beyond_50_cents"].items()))
    print("\nscored against the sung pitch of the annotated notes (COn / COff unchanged):")
    print("| system | COnPOff | COnP |\n|---|---|---|")
    for system, r in rows.items():
        print(f"| {system} | {r['COnPOff_sung']:.2f} | {r['COnP_sung']:.2f} |")


def run_worker(system, jobs, model):
    """Transcribe every job in this process; returns notes, timing and peak memory."""
    t0 = time.perf_counter()
    if system in ("svt", "svt-float32"):
        import torch

        import svt
        from svt.inference.bundle import DEFAULT_MODEL, load_bundle

        torch.set_num_threads(2)
        t1 = time.perf_counter()
        loaded = load_bundle(model or DEFAULT_MODEL,
                             pitch_precision="float32" if system == "svt-float32" else "bfloat16")

        def transcribe(path):
            return svt.transcribe(path, model=loaded)
    else:
        from svt.audio import read_audio
        from svt.baselines import pyin_notes

        t1 = time.perf_counter()  # pYIN has no model to load

        def transcribe(path):
            return pyin_notes(read_audio(path), rounded=system == "pyin-rounded")
    load, imports = time.perf_counter() - t1, t1 - t0
    notes, total = {}, 0.0
    import warnings
    for song, path in jobs.items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notes[song] = np.asarray(transcribe(path)).tolist()
        total += time.perf_counter() - t
    return {"notes": notes, "seconds": total, "load_seconds": load, "import_seconds": imports,
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss survives
    exec, so a worker would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_system(system, jobs, work: Path, args):
    jobs_file, result_file = work / f"jobs_{system}.json", work / f"result_{system}.json"
    jobs_file.write_text(json.dumps(jobs))
    if system == "basic-pitch":
        command = [args.basic_pitch_python, "-c", BASIC_PITCH_WORKER, str(jobs_file),
                   str(result_file)]
    else:
        command = [sys.executable, __file__, "--worker", system, "--jobs", str(jobs_file),
                   "--out", str(result_file)] + (["--model", args.model] if args.model else [])
    subprocess.run(command, check=True)
    return json.loads(result_file.read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--accompaniment-snr-db", type=float, default=None)
    parser.add_argument("--reverb-rt60", type=float, default=None,
                        help="reverberation time (s) of a room each recording is heard in")
    parser.add_argument("--reverb-drr-db", type=float, default=0.0,
                        help="direct-to-reverberant ratio (dB) with --reverb-rt60 (default 0)")
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    parser.add_argument("--basic-pitch-python", default=None)
    parser.add_argument("--model", default=None, help="bundle for `svt` (default: shipped)")
    parser.add_argument("--limit", type=int, default=None, help="first N recordings only")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time every system this many times, taking turns (the machine's "
                             "speed drifts by 10-20 %% within a run): the table gives the median "
                             "time, and the median ratio of each round's times to basic-pitch's")
    parser.add_argument("--sung-reference", action="store_true",
                        help="also score against the pitch sung during each annotated note")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = run_worker(args.worker, json.loads(Path(args.jobs).read_text()), args.model)
        Path(args.out).write_text(json.dumps(result))
        return 0
    if not args.data_dir:
        parser.error("DATA_DIR is required")
    if args.repeats < 1:
        parser.error(f"--repeats must be 1 or more, got {args.repeats}")
    from svt.synthetic.recorded_singing import RT60_RANGE

    if args.reverb_rt60 is not None and not RT60_RANGE[0] <= args.reverb_rt60 <= RT60_RANGE[1]:
        parser.error(f"--reverb-rt60 must be from {RT60_RANGE[0]:g} to {RT60_RANGE[1]:g} "
                     f"seconds, got {args.reverb_rt60}")
    if not np.isfinite(args.reverb_drr_db):
        parser.error(f"--reverb-drr-db must be a finite number of dB, got {args.reverb_drr_db}")
    reverb = None if args.reverb_rt60 is None else (args.reverb_rt60, args.reverb_drr_db)

    from svt.notes.scoring import score_songs

    systems = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    if "basic-pitch" in systems and not args.basic_pitch_python:
        print("bench_real: basic-pitch skipped (no --basic-pitch-python)", file=sys.stderr)
        systems.remove("basic-pitch")
    with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
        work = Path(tmp)
        jobs, references, seconds = prepare_audio(Path(args.data_dir), work,
                                                  args.accompaniment_snr_db, args.limit,
                                                  reverb)
        sung = sung_references(Path(args.data_dir), references) if args.sung_reference else None
        rows, results = {}, {}
        rounds = {system: [] for system in systems}
        for _ in range(args.repeats):  # the systems take turns, so drift favours none of them
            for system in systems:
                if not (system == "pyin-rounded" and "pyin" in systems):
                    rounds[system].append(run_system(system, jobs, work, args))
        for system in systems:
            if system == "pyin-rounded" and "pyin" in systems:
                # The same notes with their pitch rounded: pYIN runs once for both rows.
                pyin = rounds["pyin"][0]
                result = {**pyin, "round_seconds": [r["seconds"] for r in rounds["pyin"]],
                          "seconds": float(np.median([r["seconds"] for r in rounds["pyin"]])),
                          "notes": {song: [[a, b, float(round(p))] for a, b, p in notes]
                                    for song, notes in pyin["notes"].items()}}
            else:
                result = {**rounds[system][0],
                          "seconds": float(np.median([r["seconds"] for r in rounds[system]])),
                          "round_seconds": [r["seconds"] for r in rounds[system]]}
                if any(r["notes"] != result["notes"] for r in rounds[system][1:]):
                    print(f"bench_real: warning: {system} gave other notes in another round; "
                          "the scores are the first round's", file=sys.stderr)
            results[system] = result
            estimates = {song: np.asarray(n, dtype=np.float64).reshape(-1, 3)
                         for song, n in result["notes"].items()}
            _, summary, _ = score_songs(references, estimates)
            rows[system] = {**{k: 100 * summary["mean"][f"{k}_f1"]
                               for k in ("COnPOff", "COnP", "COn", "COff")},
                            "s_per_s": result["seconds"] / seconds,
                            "load_s": result["load_seconds"],
                            "import_s": result["import_seconds"],
                            "peak_rss_mb": result["peak_rss_mb"],
                            "round_s_per_s": [t / seconds for t in
                                              result.get("round_seconds", [result["seconds"]])],
                            # Over- or under-segmentation shows here before it shows in F1.
                            "notes_found": int(sum(len(n) for n in estimates.values())),
                            "notes_annotated": int(sum(len(n) for n in references.values()))}
            if sung is not None:
                _, sung_summary, _ = score_songs(sung["references"], estimates)
                rows[system].update({f"{k}_sung": 100 * sung_summary["mean"][f"{k}_f1"]
                                     for k in ("COnPOff", "COnP")})
    conditions = ([] if reverb is None else
                  [f"reverb RT60 {reverb[0]:g} s at {reverb[1]:g} dB direct-to-reverberant"])
    if args.accompaniment_snr_db is not None:
        conditions.append(f"accompaniment at {args.accompaniment_snr_db:g} dB SNR")
    condition = ", ".join(conditions) or "clean"
    print(f"{args.data_dir}: {len(jobs)} recordings, {seconds / 60:.1f} min, {condition}")
    print("| system | COnPOff | COnP | COn | COff | notes found / annotated | s per s of audio | "
          "model load s | imports s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for system, r in rows.items():
        print(f"| {system} | {r['COnPOff']:.2f} | {r['COnP']:.2f} | {r['COn']:.2f} | "
              f"{r['COff']:.2f} | {r['notes_found']} / {r['notes_annotated']} "
              f"({r['notes_found'] / max(r['notes_annotated'], 1):.2f}) | {r['s_per_s']:.4f} | "
              f"{r['load_s']:.2f} | {r['import_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    if "basic-pitch" in rows:
        baseline = rows["basic-pitch"]["round_s_per_s"]
        for system, r in rows.items():
            if system != "basic-pitch" and len(r["round_s_per_s"]) == len(baseline):
                ratios = [a / b for a, b in zip(r["round_s_per_s"], baseline)]
                r["time_ratio_to_basic_pitch"] = float(np.median(ratios))
                print(f"{system} / basic-pitch time: {np.median(ratios):.2f}x (median of "
                      f"{len(ratios)} round{'s' * (len(ratios) > 1)}: "
                      + ", ".join(f"{x:.2f}" for x in ratios) + ")")
    if sung is not None:
        print_sung_reference(sung, rows)
    if args.json:
        extra = {} if sung is None else {"annotated_minus_sung": sung["summary"]}
        Path(args.json).write_text(json.dumps({"data_dir": args.data_dir, "condition": condition,
                                               "recordings": len(jobs), "minutes": seconds / 60,
                                               "systems": rows, **extra}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
