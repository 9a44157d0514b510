"""Piano-roll pictures: transcribed (and reference) notes over a log-frequency spectrogram, the
pitch axis fitted to the notes (`pitch_range`) and labelled with note names."""
from __future__ import annotations

import numpy as np
from mir_eval.util import midi_to_hz

from svt.fileio import atomic_path

#: Beyond this, the spectrogram is skipped (notes only) to keep memory and image size sane.
MAX_SPECTROGRAM_SECONDS = 900.0
#: Semitones shown below the lowest and above the highest note.
PITCH_MARGIN = 2.0
#: The pitch axis spans at least this many semitones (a one-note song is not a wall of one box).
MIN_PITCH_SPAN = 12.0
#: The pitch axis (MIDI) when there is no note to fit: C2-C7, the range of singing.
DEFAULT_PITCH_RANGE = (36.0, 96.0)
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: int) -> str:
    """`60` -> `C4` (scientific pitch notation, as MIDI's middle C)."""
    midi = int(round(midi))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def pitch_range(*note_arrays, margin: float = PITCH_MARGIN,
                min_span: float = MIN_PITCH_SPAN) -> tuple[float, float]:
    """`(low, high)` MIDI limits of a pitch axis holding every note of `note_arrays` (`(N, 3)`
    `[onset, offset, midi]` arrays, None skipped) with `margin` semitones on both sides, widened
    about its middle to at least `min_span`; DEFAULT_PITCH_RANGE when there are no notes."""
    pitches = np.concatenate([np.reshape(np.asarray(notes, dtype=float), (-1, 3))[:, 2]
                              for notes in note_arrays if notes is not None] or [np.zeros(0)])
    pitches = pitches[np.isfinite(pitches)]
    if len(pitches) == 0:
        return DEFAULT_PITCH_RANGE
    low, high = float(pitches.min()) - margin, float(pitches.max()) + margin
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    return low, high


def _tick_notes(low: float, high: float) -> list[int]:
    """The notes labelled on a pitch axis from `low` to `high` (MIDI): every semitone on a narrow
    axis, the natural notes on a wider one, then C, E and G#, then the Cs only."""
    span = high - low
    if span <= 16:
        keep = set(range(12))
    elif span <= 30:
        keep = {0, 2, 4, 5, 7, 9, 11}
    elif span <= 48:
        keep = {0, 4, 8}
    else:
        keep = {0}
    return [n for n in range(int(np.ceil(low)), int(np.floor(high)) + 1) if n % 12 in keep]


def piano_roll_figure(notes, audio=None, sample_rate=16000, reference=None, title=None,
                      scores=None):
    """The matplotlib figure `plot_piano_roll` saves: estimated notes (filled boxes) and
    reference notes (outlines) on a log-frequency axis fitted to them (`pitch_range`), over the
    audio's log-magnitude spectrogram when `audio` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FixedLocator, NullFormatter

    notes = np.asarray(notes, dtype=float).reshape(-1, 3)
    if reference is not None:
        reference = np.asarray(reference, dtype=float).reshape(-1, 3)
    all_notes = notes if reference is None else np.vstack([notes, reference])
    end = max(float(all_notes[:, 1].max()) if len(all_notes) else 0.0,
              len(audio) / sample_rate if audio is not None else 0.0, 1.0)
    width = float(np.clip(end / 4.0, 8.0, 60.0))
    fig, ax = plt.subplots(figsize=(width, 5), dpi=100)
    low, high = pitch_range(notes, reference)
    low_hz, high_hz = float(midi_to_hz(low)), float(midi_to_hz(high))
    if audio is not None and len(audio) and end <= MAX_SPECTROGRAM_SECONDS:
        import librosa

        hop = 256
        spec = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=2048,
                                   hop_length=hop))
        db = librosa.amplitude_to_db(spec, ref=np.max, top_db=80)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=2048)
        times = np.arange(db.shape[1]) * hop / sample_rate
        keep = (freqs >= low_hz * 0.9) & (freqs <= high_hz * 1.1)
        if keep.sum() >= 2:
            ax.pcolormesh(times, freqs[keep], db[keep], shading="auto", cmap="magma",
                          rasterized=True)
    if reference is not None:
        for onset, offset, midi in reference:
            lo, hi = midi_to_hz(midi - 0.5), midi_to_hz(midi + 0.5)
            ax.add_patch(Rectangle((onset, lo), offset - onset, hi - lo, fill=False,
                                   edgecolor="white", linewidth=1.2))
    for onset, offset, midi in notes:
        lo, hi = midi_to_hz(midi - 0.4), midi_to_hz(midi + 0.4)
        ax.add_patch(Rectangle((onset, lo), offset - onset, hi - lo, facecolor="cyan",
                               edgecolor="black", linewidth=0.5, alpha=0.8))
    ax.set_yscale("log")
    ax.set_ylim(low_hz, high_hz)
    ticks = _tick_notes(low, high)
    ax.set_yticks(midi_to_hz(np.array(ticks, dtype=float)))
    ax.set_yticklabels([note_name(n) for n in ticks])
    # Every semitone as an unlabelled minor tick (the log scale's own minor ticks would be
    # labelled in Hz on an axis narrower than a decade).
    semitones = np.arange(np.ceil(low), np.floor(high) + 1)
    ax.yaxis.set_minor_locator(FixedLocator(midi_to_hz(semitones)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(0, end)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    heading = title or ""
    if scores:
        heading += "  " + "  ".join(f"{k} F1 {100 * scores[f'{k}_f1']:.1f}"
                                    for k in ("COnPOff", "COnP", "COn"))
    legend = "filled: transcription" + ("; outlined: reference" if reference is not None else "")
    ax.set_title(f"{heading}\n{legend}".strip(), fontsize=10)
    fig.tight_layout()
    return fig


def plot_piano_roll(path, notes, audio=None, sample_rate=16000, reference=None, title=None,
                    scores=None):
    """Save `piano_roll_figure(...)` as a PNG at `path` (atomically)."""
    fig = piano_roll_figure(notes, audio, sample_rate, reference, title, scores)
    import matplotlib.pyplot as plt  # after piano_roll_figure has chosen the Agg backend

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
