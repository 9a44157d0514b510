"""Transcription speed and memory against the machine's own compute bound, measured in one run.

    python benchmarks/bench_transcribe.py [--seconds 60] [--long-minutes 60] [--sizes base,large]

For a wav2vec2-base-sized and a wav2vec2-large-sized encoder (random weights: only timing matters),
and for the shipped model (`shipped`: as `svt.transcribe` runs it, its FCPE pitch network computed
by `svt.models.pitch_network.FastPitchNetwork` with bfloat16 products; `shipped-float32`: the
same in float32; `shipped-torchfcpe`: FCPE in float32 as torchfcpe's own modules compute it):

* measured: seconds of processing per second of audio for `svt.transcribe` on a synthetic song
  (default chunking: 5 s kept + 0.5 s context on each side, 4 chunks per forward pass), the
  median of `--repeats` runs, the models taking turns;
* bound: the model's FLOPs per second of audio (counted by torch's FlopCounterMode on a 5-s
  forward pass) divided by the matrix-multiply throughput measured on this machine in the same
  run: no implementation can beat it on this hardware;
* ratio = measured / bound (1.0 is perfect; the context audio alone costs 6/5 = 1.2x);
* peak resident memory of a separate process transcribing a `--long-minutes` recording with the
  base-sized encoder.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, feat_extract_norm="group", conv_bias=False),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, feat_extract_norm="layer", conv_bias=True),
}
SR = 16000


def matmul_flops_per_second(n=1024, seconds=2.0):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def build_model(size, folder):
    """A random-weight bundle of the given size (config files only, no download)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

    from svt.inference.bundle import TranscriptionModel
    from svt.models.head import TranscriptionHead
    from svt.models.ssl import SSLEncoder

    config = Wav2Vec2Config(conv_dim=(512,) * 7, do_stable_layer_norm=size == "large",
                            **SIZES[size])
    config.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SR).save_pretrained(folder)
    encoder = SSLEncoder(source=str(folder), pretrained=False)
    settings = {"frame_rate": 49.8, "sample_rate": SR, "dur_threshold": 5,
                "onset_threshold": 0.4, "offset_threshold": 0.5}
    return TranscriptionModel(encoder, TranscriptionHead(encoder.output_size), settings).eval()


SHIPPED_VARIANTS = ("shipped", "shipped-float32", "shipped-torchfcpe")


def shipped_model(variant="shipped"):
    """The shipped bundle as `variant` (one of SHIPPED_VARIANTS) computes FCPE."""
    from svt.inference.bundle import DEFAULT_MODEL, load_bundle

    model = load_bundle(DEFAULT_MODEL,
                        pitch_precision="bfloat16" if variant == "shipped" else "float32")
    if variant == "shipped-torchfcpe":
        model.encoder.fast_fcpe = None
    return model


def model_flops_per_audio_second(model):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 5 * SR))
    return counter.get_total_flops() / 5.0


def synthetic_song(seconds, seed=0):
    from svt.synthetic.singing import generate_melody, render_singing

    rng = np.random.default_rng(seed)
    notes = generate_melody(rng, seconds)
    return render_singing(notes, SR, rng=rng, duration_s=seconds)


def peak_memory_child(args):
    """Child process: transcribe a long file, print peak RSS (MiB) as JSON."""
    import svt

    folder, wav_path = args
    model = shipped_model() if folder == "shipped" else build_model("base", Path(folder))
    start = time.perf_counter()
    notes = svt.transcribe(wav_path, model=model, batch_size=4)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "seconds": elapsed, "notes": len(notes)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio for the speed test")
    parser.add_argument("--long-minutes", type=float, default=60.0,
                        help="length of the memory test recording (0 to skip)")
    parser.add_argument("--sizes", default="base,large," + ",".join(reversed(SHIPPED_VARIANTS)))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (median)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return peak_memory_child(args.child)
    unknown = [size for size in args.sizes.split(",") if size not in (*SIZES, *SHIPPED_VARIANTS)]
    if unknown:
        parser.error(f"--sizes: unknown {unknown}; choose from {[*SIZES, *SHIPPED_VARIANTS]}")
    import svt

    torch.manual_seed(0)
    flops = matmul_flops_per_second()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; measured matmul "
          f"throughput: {flops / 1e9:.1f} GFLOP/s")
    wav = synthetic_song(args.seconds)
    print(f"{'encoder':<18}{'params':>9}{'GFLOP/s-audio':>15}{'bound s/s':>11}"
          f"{'measured s/s':>14}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        rows, sizes = [], args.sizes.split(",")
        for size in sizes:
            if size in SHIPPED_VARIANTS:
                model = shipped_model(size)
                # FCPE (frozen, outside the module tree) included.
                params = sum(p.numel() for p in [*model.parameters(),
                                                 *model.encoder.fcpe.parameters()]) / 1e6
            else:
                model = build_model(size, Path(tmp) / size)
                params = sum(p.numel() for p in model.parameters()) / 1e6
            svt.transcribe(wav[: 8 * SR], SR, model)  # warm-up
            rows.append((size, model, params, model_flops_per_audio_second(model), []))
        # The models take turns, run after run, so a machine that speeds up or slows down
        # during the benchmark does not favour one of them.
        for _ in range(args.repeats):
            for size, model, _, _, times in rows:
                start = time.perf_counter()
                svt.transcribe(wav, SR, model, batch_size=4)
                times.append((time.perf_counter() - start) / args.seconds)
        for size, model, params, per_second, times in rows:
            bound = per_second / flops
            measured = float(np.median(times))
            print(f"{size:<18}{params:>8.1f}M{per_second / 1e9:>15.1f}{bound:>11.4f}"
                  f"{measured:>14.4f}{measured / bound:>7.2f}x")
        medians = {size: float(np.median(times)) for size, _, _, _, times in rows}
        for numerator, denominator in (("shipped-float32", "shipped-torchfcpe"),
                                       ("shipped", "shipped-float32")):
            if {numerator, denominator} <= medians.keys():
                print(f"{numerator} / {denominator} time: "
                      f"{medians[numerator] / medians[denominator]:.3f}x")
        if args.long_minutes > 0:
            path = Path(tmp) / "long.wav"
            minute = synthetic_song(60.0, seed=1)
            with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
                for _ in range(int(np.ceil(args.long_minutes))):
                    f.write(minute)
            children = []  # the memory of the models measured above
            if "base" in sizes:
                children.append(("base-sized encoder", str(Path(tmp) / "mem")))
            if any(size.startswith("shipped") for size in sizes):
                children.append(("shipped model", "shipped"))
            for name, folder in children:
                proc = subprocess.run([sys.executable, __file__, "--child", folder, str(path)],
                                      capture_output=True, text=True, check=True)
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{args.long_minutes:g}-minute recording, {name}: peak memory "
                      f"{result['peak_mib']:.0f} MiB (the 16 kHz audio alone would be "
                      f"{args.long_minutes * 60 * SR * 4 / 2**20:.0f} MiB as float32), "
                      f"{result['seconds']:.0f} s, {result['notes']} notes")


if __name__ == "__main__":
    main()
