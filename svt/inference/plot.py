"""Piano-roll pictures: transcribed (and reference) notes over a log-frequency spectrogram."""
from __future__ import annotations

import numpy as np
from mir_eval.util import midi_to_hz

from svt.fileio import atomic_path

#: Beyond this, the spectrogram is skipped (notes only) to keep memory and image size sane.
MAX_SPECTROGRAM_SECONDS = 900.0


def plot_piano_roll(path, notes, audio=None, sample_rate=16000, reference=None, title=None,
                    scores=None):
    """Save a PNG: estimated notes (filled boxes) and reference notes (outlines) on a log-frequency
    axis, over the audio's log-magnitude spectrogram when `audio` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    notes = np.asarray(notes, dtype=float).reshape(-1, 3)
    all_notes = notes if reference is None else np.vstack([notes, np.reshape(reference, (-1, 3))])
    end = max(float(all_notes[:, 1].max()) if len(all_notes) else 0.0,
              len(audio) / sample_rate if audio is not None else 0.0, 1.0)
    width = float(np.clip(end / 4.0, 8.0, 60.0))
    fig, ax = plt.subplots(figsize=(width, 5), dpi=100)
    low_hz, high_hz = 55.0, 1760.0
    if audio is not None and len(audio) and end <= MAX_SPECTROGRAM_SECONDS:
        import librosa

        hop = 256
        spec = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=2048,
                                   hop_length=hop))
        db = librosa.amplitude_to_db(spec, ref=np.max, top_db=80)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=2048)
        times = np.arange(db.shape[1]) * hop / sample_rate
        keep = (freqs >= low_hz * 0.9) & (freqs <= high_hz * 1.1)
        ax.pcolormesh(times, freqs[keep], db[keep], shading="auto", cmap="magma",
                      rasterized=True)
    if reference is not None:
        for onset, offset, midi in np.reshape(reference, (-1, 3)):
            lo, hi = midi_to_hz(midi - 0.5), midi_to_hz(midi + 0.5)
            ax.add_patch(Rectangle((onset, lo), offset - onset, hi - lo, fill=False,
                                   edgecolor="white", linewidth=1.2))
    for onset, offset, midi in notes:
        lo, hi = midi_to_hz(midi - 0.4), midi_to_hz(midi + 0.4)
        ax.add_patch(Rectangle((onset, lo), offset - onset, hi - lo, facecolor="cyan",
                               edgecolor="black", linewidth=0.5, alpha=0.8))
    ax.set_yscale("log")
    ax.set_ylim(low_hz, high_hz)
    ax.set_yticks(midi_to_hz(np.arange(36, 97, 12)))
    ax.set_yticklabels([f"C{n // 12 - 1}" for n in range(33, 97) if n % 12 == 0])
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
