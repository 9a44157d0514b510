"""Utterance loading: partial reads (svt.data) against reading the whole song per utterance (the
original pipeline), measured in the same run on a 4-minute 16 kHz song cut into 5-s utterances.

    python benchmarks/bench_utterance_loading.py [--minutes 4] [--repeats 5]

Prints utterances per second for both and the speed-up (target >= 5x).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from svt.data.utterances import (
    load_audio_slice,
    load_label_slice,
    split_utterances,
    utterance_slice,
)
from svt.notes.labels import notes_to_frames, num_label_frames
from svt.synthetic.singing import generate_melody, render_singing

DUR, FRAME_RATE, SR = 5, 49.8, 16000


def whole_file_loader(wav_path, label_path, utter_id, utter_num):
    """The original: load the whole wav and label file, then slice."""
    wav, _ = sf.read(wav_path, dtype="float32")
    labels = np.load(label_path)
    start, stop = utterance_slice(utter_id, utter_num, SR, DUR, len(wav))
    f_start, f_stop = utterance_slice(utter_id, utter_num, FRAME_RATE, DUR, len(labels))
    return torch.from_numpy(wav[start:stop]), torch.from_numpy(labels[f_start:f_stop])


def partial_loader(wav_path, label_path, utter_id, utter_num):
    return (load_audio_slice(wav_path, utter_id, utter_num, DUR),
            load_label_slice(label_path, utter_id, utter_num, FRAME_RATE, DUR))


def utterances_per_second(loader, wav_path, label_path, utterances, repeats):
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for utter_id, utter_num, _, _ in utterances:
            loader(wav_path, label_path, utter_id, utter_num)
        rates.append(len(utterances) / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        duration = args.minutes * 60
        rng = np.random.default_rng(0)
        notes = generate_melody(rng, duration)
        wav = render_singing(notes, SR, rng=rng, duration_s=duration)
        wav_path, label_path = Path(tmp) / "vocals.wav", Path(tmp) / "labels.npy"
        sf.write(wav_path, wav, SR, subtype="PCM_16")
        np.save(label_path, notes_to_frames(notes, num_label_frames(len(wav), SR, FRAME_RATE),
                                            FRAME_RATE))
        utterances = split_utterances(len(wav) / SR, DUR)
        # Both loaders return the same data.
        for utter in utterances[:3] + utterances[-1:]:
            a, b = whole_file_loader(wav_path, label_path, *utter[:2]), \
                partial_loader(wav_path, label_path, *utter[:2])
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        whole = utterances_per_second(whole_file_loader, wav_path, label_path, utterances,
                                      args.repeats)
        partial = utterances_per_second(partial_loader, wav_path, label_path, utterances,
                                        args.repeats)
    print(f"{args.minutes:g}-minute song, {len(utterances)} utterances of {DUR} s, median of "
          f"{args.repeats} passes")
    print(f"{'loader':<28}{'utterances/s':>14}")
    print(f"{'whole file per utterance':<28}{whole:>14.1f}")
    print(f"{'partial reads (svt.data)':<28}{partial:>14.1f}")
    ratio = partial / whole
    print(f"speed-up: {ratio:.1f}x (target >= 5x){'' if ratio >= 5 else '  (below target)'}")


if __name__ == "__main__":
    main()
