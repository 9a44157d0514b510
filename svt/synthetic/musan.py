"""A tiny synthetic MUSAN for tests and demos (`make_fake_musan`): MUSAN's folder structure and
file names with short generated signals (formant "speech", tone "music", noises), seeded, so that
the noise preparation of `svt.datasets.musan` runs without the 11 GB corpus.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from svt.audio import SAMPLE_RATE, write_audio
from svt.datasets.musan import keyed_rng
from svt.fileio import write_text_atomic

# --------------------------------------------------------------------------------------------
# A tiny synthetic MUSAN for tests and demos
# --------------------------------------------------------------------------------------------

_MUSIC_SUBSETS = (("fma", "music-fma"), ("fma-western-art", "music-fma-wa"),
                  ("hd-classical", "music-hd"), ("jamendo", "music-jamendo"),
                  ("rfm", "music-rfm"))
_SPEECH_DURATIONS = (3.5, 12.0, 25.3, 7.2, 10.0, 20.4, 4.4, 14.0, 8.6, 16.1)
_MUSIC_DURATIONS = (6.0, 15.5, 12.0, 9.0, 23.0)
_FREE_SOUND_DURATIONS = (2.0, 4.5, 0.6, 7.0, 1.2, 9.5, 14.0, 3.3, 5.0, 6.1, 2.7, 8.8)
_SOUND_BIBLE_DURATIONS = (1.5, 11.0, 3.0, 5.5)
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
           (660, 1720, 2410), (570, 840, 2410), (440, 1020, 2240), (490, 1350, 1690))


def _resonate(x, freq, bw, sr):
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bw / sr)
    a = [1.0, -2 * r * math.cos(2 * math.pi * freq / sr), r * r]
    return lfilter([1.0 - r], a, x)


def _fake_speech(rng, n, sr):
    from scipy.signal import lfilter

    out = np.zeros(n)
    f0_base = rng.uniform(95, 230)
    pos = int(rng.uniform(0.05, 0.3) * sr)
    while pos < n:
        if rng.random() < 0.12:  # pause
            pos += int(rng.uniform(0.15, 0.5) * sr)
            continue
        m = int(rng.uniform(0.1, 0.32) * sr)
        t = np.arange(m) / sr
        f0 = f0_base * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6))
                        ) * rng.uniform(0.85, 1.15)
        phase = np.cumsum(f0) / sr
        source = 2 * (phase % 1.0) - 1  # sawtooth glottal source
        source = lfilter([1.0], [1.0, -0.9], source) * 0.1
        f1, f2, f3 = _VOWELS[int(rng.integers(len(_VOWELS)))]
        voiced = sum(_resonate(source, f, bw, sr) * g
                     for f, bw, g in ((f1, 90, 1.0), (f2, 110, 0.6), (f3, 160, 0.3)))
        if rng.random() < 0.4:  # fricative onset
            k = min(m, int(0.06 * sr))
            voiced[:k] += _resonate(rng.standard_normal(k), rng.uniform(3000, 6000), 1500, sr) * 0.3
        env = np.sin(np.pi * np.arange(m) / m) ** 0.6
        seg = voiced * env
        end = min(n, pos + m)
        out[pos:end] += seg[:end - pos]
        pos = end + int(rng.uniform(0.0, 0.05) * sr)
    return out


def _fake_music(rng, n, sr):
    out = np.zeros(n)
    beat = rng.uniform(0.25, 0.6)
    tonic = rng.uniform(45, 60)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    pos = 0
    while pos < n:
        m = min(n - pos, int(beat * sr * rng.choice([1, 2])))
        t = np.arange(m) / sr
        env = np.exp(-t * rng.uniform(2, 6))
        chord = tonic + scale[rng.choice(len(scale), size=rng.integers(1, 4), replace=False)]
        for midi in chord:
            f = 440.0 * 2 ** ((midi - 69) / 12)
            for h in range(1, 6):
                if f * h < sr / 2:
                    out[pos:pos + m] += env * np.sin(2 * np.pi * f * h * t) / h ** 1.5
        if rng.random() < 0.5:  # a drum hit
            k = min(m, int(0.05 * sr))
            out[pos:pos + k] += rng.standard_normal(k) * np.exp(-np.arange(k) / (0.01 * sr)) * 0.5
        pos += m
    return out


def _fake_noise(rng, n, sr):
    from scipy.signal import lfilter

    kind = int(rng.integers(5))
    white = rng.standard_normal(n)
    if kind == 0:  # white
        return white
    if kind == 1:  # pink-ish
        spec = np.fft.rfft(white)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        return np.fft.irfft(spec, n)
    if kind == 2:  # brown-ish rumble
        return lfilter([1.0], [1.0, -0.995], white)
    t = np.arange(n) / sr
    if kind == 3:  # hum
        f = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 6)) + 0.1 * white
    clicks = (rng.random(n) < 30.0 / sr) * rng.standard_normal(n) * 5  # rain / crackle
    return _resonate(clicks, rng.uniform(1000, 4000), 800, sr) + 0.05 * white


def make_fake_musan(root, seed: int = 0, num_speech: int = 20, num_music: int = 5,
                    num_free_sound: int = 12, num_sound_bible: int = 4,
                    sample_rate: int = SAMPLE_RATE) -> dict:
    """Write a tiny synthetic MUSAN: the real folder structure and file names, short signals.

    ::

        root/README
        root/speech/{librivox,us-gov}/speech-<subset>-<0000>.wav   formant "speech"
        root/music/{fma,fma-western-art,hd-classical,jamendo,rfm}/music-<...>-<0000>.wav  tones
        root/noise/{free-sound,sound-bible}/noise-<subset>-<0000>.wav   noises
        (+ ANNOTATIONS and LICENSE in every subset folder, as in MUSAN)

    Durations cycle through fixed lists holding files shorter than, exactly, and longer than 10 s
    (and some under 1 s); `seed` decides the signals. Same arguments -> byte-identical files.
    Returns `{"root", "files": {relative path: num_frames}}`.
    """
    root = Path(root)
    files = {}
    plan = []
    n_libri = math.ceil(num_speech * 0.6)
    for i in range(num_speech):
        sub, k = ("librivox", i) if i < n_libri else ("us-gov", i - n_libri)
        plan.append(("speech", sub, f"speech-{sub}-{k:04d}",
                     _SPEECH_DURATIONS[i % len(_SPEECH_DURATIONS)], _fake_speech))
    for i in range(num_music):
        sub, prefix = _MUSIC_SUBSETS[i % len(_MUSIC_SUBSETS)]
        plan.append(("music", sub, f"{prefix}-{i // len(_MUSIC_SUBSETS):04d}",
                     _MUSIC_DURATIONS[i % len(_MUSIC_DURATIONS)], _fake_music))
    for sub, count, durations in (("free-sound", num_free_sound, _FREE_SOUND_DURATIONS),
                                  ("sound-bible", num_sound_bible, _SOUND_BIBLE_DURATIONS)):
        for i in range(count):
            plan.append(("noise", sub, f"noise-{sub}-{i:04d}", durations[i % len(durations)],
                         _fake_noise))
    annotations: dict = {}
    for cat, sub, name, dur, gen in plan:
        rng = keyed_rng(seed, "fake-musan", f"{cat}/{sub}/{name}")
        n = int(round(dur * sample_rate))
        wav = gen(rng, n, sample_rate)
        wav = wav / (np.max(np.abs(wav)) + 1e-12) * rng.uniform(0.3, 0.9)
        rel = f"{cat}/{sub}/{name}.wav"
        write_audio(root / rel, wav, sample_rate)
        files[rel] = n
        annotations.setdefault((cat, sub), []).append(name)
    for (cat, sub), names in annotations.items():
        write_text_atomic(root / cat / sub / "ANNOTATIONS",
                          "".join(f"{name} synthetic\n" for name in names))
        write_text_atomic(root / cat / sub / "LICENSE", "synthetic test data, no license needed\n")
    write_text_atomic(root / "README", "Synthetic MUSAN-like corpus written by "
                      "svt.synthetic.musan.make_fake_musan (same layout and file names as MUSAN).\n")
    return {"root": str(root), "files": files}


