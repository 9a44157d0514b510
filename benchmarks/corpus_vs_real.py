#!/usr/bin/env python3
"""What separates a synthetic corpus from recorded singing: note statistics side by side.

    python benchmarks/corpus_vs_real.py REAL_DIR [--songs 60] [--rests]

REAL_DIR holds recordings with notes in the SSVD layout. Compared with it: the old corpus
(`svt.synthetic.singing`, in tune, studio stems), the recorded-singing corpus
(`svt.synthetic.recorded_singing`) that trains the shipped model, and the same with half of its
short rests sung through (`voiced_gaps`). Printed per corpus: distance of the annotated pitches
from the tempered scale, note durations and gaps, repeated notes, pitch range, and the level and
noise floor of the audio. `--rests` adds what the voice does in the annotated rests of 15-300 ms,
heard by the shipped model's pitch network (FCPE; a minute or two for SSVD's dev songs): the
share voiced throughout, and where the pitch sits in those between the notes around them (0: the
previous note's pitch, 1: the next note's; rests between notes a semitone or more apart).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.audio import read_audio  # noqa: E402
from svt.notes.formats import read_onset_offset_midi  # noqa: E402
from svt.synthetic.recorded_singing import CorpusStyle, render_recorded_song  # noqa: E402


def statistics(songs):
    """songs: list of (notes, audio at 16 kHz)."""
    notes = [n for n, _ in songs if len(n)]
    allnotes = np.concatenate(notes)
    detune = np.abs(allnotes[:, 2] - np.round(allnotes[:, 2]))
    durations = allnotes[:, 1] - allnotes[:, 0]
    gaps = np.concatenate([n[1:, 0] - n[:-1, 1] for n in notes])
    repeats = np.concatenate([np.abs(np.diff(np.round(n[:, 2]))) == 0 for n in notes])
    levels, floors = [], []
    for _, audio in songs:
        frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
        rms_db = 20 * np.log10(np.sqrt(np.mean(frames ** 2, axis=1)) + 1e-9)
        levels.append(np.percentile(rms_db, 95))
        floors.append(np.percentile(rms_db, 5))
    return {
        "songs": len(songs),
        "notes per song": np.mean([len(n) for n in notes]),
        "|pitch - semitone| median (cents)": 100 * np.median(detune),
        "share > 25 cents off": np.mean(detune > 0.25),
        "note duration median (s)": np.median(durations),
        "note duration p10-p90 (s)": f"{np.percentile(durations, 10):.2f}-"
                                     f"{np.percentile(durations, 90):.2f}",
        "gap median (s)": np.median(gaps),
        "legato share (gap < 30 ms)": np.mean(gaps < 0.03),
        "repeated-pitch share": np.mean(repeats),
        "pitch p5-p95 (MIDI)": f"{np.percentile(allnotes[:, 2], 5):.1f}-"
                               f"{np.percentile(allnotes[:, 2], 95):.1f}",
        "level p95 (dBFS RMS)": np.median(levels),
        "noise floor p5 (dBFS RMS)": np.median(floors),
    }


def rest_statistics(songs):
    """What the voice does in the annotated rests of 15-300 ms (see the module docstring)."""
    import svt

    rests = voiced = 0
    positions = []
    for notes, audio in songs:
        _, frames = svt.transcribe(audio, sample_rate=16000, return_frames=True)
        sung = frames[4]  # the pitch network's sung pitch, 100 frames/s, NaN where unvoiced
        for (_, end, before), (start, _, after) in zip(notes[:-1], notes[1:]):
            if not 0.015 <= start - end <= 0.3:
                continue
            rests += 1
            pitch = sung[int(round(end * 100)): int(round(start * 100)) + 1]
            if len(pitch) and np.isfinite(pitch).all():
                voiced += 1
                if abs(after - before) >= 1.0:
                    positions.append(np.median((pitch - before) / (after - before)))
    quartiles = np.percentile(positions, [25, 50, 75]) if positions else [np.nan] * 3
    return {"rests of 15-300 ms": str(rests),
            "share voiced throughout": voiced / max(rests, 1),
            "pitch in them, 0 = previous note, 1 = next (quartiles)":
                "/".join(f"{q:.2f}" for q in quartiles)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("real_dir")
    parser.add_argument("--songs", type=int, default=60, help="synthetic songs per corpus")
    parser.add_argument("--rests", action="store_true",
                        help="also what the voice does in short rests (runs the shipped model)")
    args = parser.parse_args(argv)
    real = []
    for txt in sorted(Path(args.real_dir).glob("*.txt")):
        audio = next((txt.with_suffix(s) for s in (".flac", ".wav")
                      if txt.with_suffix(s).exists()), None)
        if audio is not None:
            real.append((read_onset_offset_midi(txt), read_audio(audio)))
    corpora = {"real": real}
    for name, style in (("old synth", CorpusStyle.clean()), ("recorded_singing", CorpusStyle()),
                        ("+ voiced_gaps 0.5", CorpusStyle(voiced_gaps=0.5))):
        corpora[name] = [render_recorded_song([7, k], 20.0, style)[:2] for k in range(args.songs)]
    table = {name: {**statistics(songs), **(rest_statistics(songs) if args.rests else {})}
             for name, songs in corpora.items()}
    print("| statistic | " + " | ".join(table) + " |")
    print("|---|" + "---|" * len(table))
    for key in table["real"]:
        cells = [v[key] if isinstance(v[key], str) else f"{v[key]:.3g}" for v in table.values()]
        print(f"| {key} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
