"""Cost of vocal separation (`--separate`): CPU time per second of audio and peak memory.

The model is the real `htdemucs` architecture (Hybrid Transformer Demucs, 42 M parameters, the
constructor arguments of demucs' pretrained `955717e8` checkpoint) with random weights, so no
download is needed: the cost of a forward pass does not depend on the weights' values. Each case
runs in a fresh interpreter limited to `--threads` torch threads (2 by default, the size of the
project's machines), separating a stereo 44.1 kHz WAV file from disk with
`svt.inference.separation.separate_file` (16 kHz mono vocals, as `svt-transcribe --separate`
does), and reports wall time, process CPU time (all threads) and peak resident memory (VmHWM),
before separating (model built) and after. Memory should not grow with the song beyond the
output array (64 kB per second of song) and the file's decoding buffers.

    .venv/bin/python benchmarks/bench_separation.py [--seconds 30 120] [--threads 2]
        [--compare-demucs]

`--compare-demucs` also runs demucs' own in-memory `apply_model` over the whole song (the song at
44.1 kHz and its four stems held in memory) for the memory comparison.
On a shared machine the wall time includes waiting for the cores; CPU seconds per second of audio
is the number to compare (on idle cores the wall time is between CPU/threads and CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

#: demucs' pretrained htdemucs (hybrid_transformer/955717e8-8726e21a.th), its `kwargs`.
HTDEMUCS_KWARGS = dict(
    sources=["drums", "bass", "other", "vocals"], audio_channels=2, samplerate=44100,
    segment=Fraction(39, 5), channels=48, channels_time=None, growth=2, nfft=4096,
    wiener_iters=0, end_iters=0, wiener_residual=False, cac=True, depth=4, rewrite=True,
    multi_freqs=[], multi_freqs_depth=3, freq_emb=0.2, emb_scale=10, emb_smooth=True,
    kernel_size=8, stride=4, time_stride=2, context=1, context_enc=0, norm_starts=4,
    norm_groups=4, dconv_mode=3, dconv_depth=2, dconv_comp=8, dconv_init=0.001,
    bottom_channels=512, t_layers=5, t_hidden_scale=4.0, t_heads=8, t_dropout=0.02,
    t_layer_scale=True, t_gelu=True, t_emb="sin", t_max_positions=10000, t_max_period=10000.0,
    t_weight_pos_embed=1.0, t_cape_mean_normalize=True, t_cape_augment=True,
    t_cape_glob_loc_scale=[5000.0, 1.0, 1.4], t_sin_random_shift=0, t_norm_in=True,
    t_norm_in_group=False, t_group_norm=False, t_norm_first=True, t_norm_out=True,
    t_weight_decay=0.0, t_lr=None, t_sparse_self_attn=False, t_sparse_cross_attn=False,
    t_mask_type="diag", t_mask_random_seed=42, t_sparse_attn_window=400, t_global_window=100,
    t_sparsity=0.95, t_auto_sparsity=False, t_cross_first=False, rescale=0.1)


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_song(path, seconds, rate=44100):
    """A stereo 'song': a sung-like tone (vibrato, 220-440 Hz) over noise, 16-bit WAV."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as f:
        for start in range(0, n, rate * 10):
            t = np.arange(start, min(start + rate * 10, n)) / rate
            f0 = 330 + 110 * np.sin(2 * np.pi * 0.2 * t) + 5 * np.sin(2 * np.pi * 5.5 * t)
            voice = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / rate)
            mix = voice[:, None] + 0.1 * rng.standard_normal((len(t), 2))
            f.write(mix.astype(np.float32))


def child(args):
    import torch

    torch.set_num_threads(args.threads)
    import warnings

    warnings.simplefilter("ignore")
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    from svt.inference.separation import separate_file

    torch.manual_seed(0)
    model = HTDemucs(**HTDEMUCS_KWARGS).eval()
    baseline = vm_hwm_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    if args.child == "svt":
        vocals = separate_file(args.path, model)
        out_samples = len(vocals)
    else:  # demucs' own whole-song separation, as svt.datasets.separation calls it
        import soundfile as sf

        mix, _ = sf.read(args.path, dtype="float32", always_2d=True)
        with torch.no_grad():
            stems = apply_model(model, torch.from_numpy(mix.T.copy())[None], shifts=0,
                                split=True, overlap=0.25)
        out_samples = stems.shape[-1]
    result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
              "baseline_mb": baseline, "peak_mb": vm_hwm_mb(), "samples": out_samples,
              "params": sum(p.numel() for p in model.parameters())}
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0],
                        help="song lengths (the first one is timed for the cost per second)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-demucs", action="store_true")
    parser.add_argument("--child", choices=["svt", "demucs"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            path = os.path.join(tmp, f"song_{seconds:g}s.wav")
            write_song(path, seconds)
            for kind in ["svt"] + (["demucs"] if args.compare_demucs else []):
                cmd = [sys.executable, __file__, "--child", kind, "--path", path,
                       "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True,
                                     env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
                if out.returncode:
                    sys.exit(f"{kind} {seconds:g} s failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((kind, seconds, r))
                print(f"{kind} {seconds:g} s: {r}", file=sys.stderr)

    print(f"Vocal separation, htdemucs architecture ({rows[0][2]['params'] / 1e6:.1f} M "
          f"parameters, random weights), {args.threads} torch threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| method | audio (s) | wall (s) | wall s / audio s | CPU s / audio s "
          "| peak RSS (MB) | peak - model loaded (MB) |")
    print("|---|---|---|---|---|---|---|")
    for kind, seconds, r in rows:
        name = ("svt separate_file (streamed)" if kind == "svt"
                else "demucs apply_model (whole song in memory)")
        print(f"| {name} | {seconds:g} | {r['wall']:.1f} | {r['wall'] / seconds:.2f} "
              f"| {r['cpu'] / seconds:.2f} | {r['peak_mb']:.0f} "
              f"| {r['peak_mb'] - r['baseline_mb']:.0f} |")
    print("\n    " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))


if __name__ == "__main__":
    main()
