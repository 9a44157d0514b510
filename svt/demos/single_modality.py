"""`make demo`: the audio-only recipe end to end on a fresh machine, with nothing to download.

1. Generates a synthetic singing corpus in the MIR-ST500 layout (`svt.synthetic.singing`).
2. Builds a small wav2vec 2.0 encoder from a config (random weights: pretrained ones cannot be
   downloaded here) and saves it like a hub checkpoint.
3. Runs the MIR-ST500 recipe (`MIR-ST500/experiment.py hparams/train_audio_ssl.yaml`) on it with
   the same schedule (linear probing, then fine-tuning, NewBob annealing, checkpoint selection),
   overriding only sizes and learning rates suited to training from scratch on 2 CPU cores.
4. Evaluates on held-out synthetic songs, prints the metric table, and leaves the inference
   bundle in `<output>/model/`.
5. Transcribes the same held-out songs with the model shipped in the package
   (`svt.transcribe(path)`, no training) and prints its scores beside the recipe's.

Every step is resumable: run it again and finished steps are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path

from svt.demos import pin_torch_threads
from svt.notes.scoring import METRICS

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "MIR-ST500"
VIDEO_RECIPE = REPO / "N20EMv2" / "video_only"

#: The demo encoder: wav2vec 2.0's conv stack (so 49.8 frames/s) with small widths.
DEMO_ENCODER = dict(model_type="wav2vec2", hidden_size=96, num_layers=2, num_heads=4,
                    intermediate_size=192, conv_dim=64, feat_extract_norm="group",
                    do_normalize=True, seed=0)

#: Overrides of MIR-ST500/hparams/train_audio_ssl.yaml for training from scratch on a CPU.
DEMO_OVERRIDES = {
    "number_of_epochs": 12,
    "linear_prob_epochs": 1,
    "batch_size": 8,
    "eval_batch_size": 8,
    "num_workers": 0,
    "lr": 1.0,            # Adadelta's usual step for a head trained from scratch
    "lr_ssl": 0.001,      # Adam on a randomly initialised encoder
    "ssl_name": "demo",
    "ckpt_interval_minutes": 0,
}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m svt.demos.single_modality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="results/demo", help="output folder")
    parser.add_argument("--num-train", type=int, default=48, help="synthetic training songs")
    parser.add_argument("--num-test", type=int, default=8, help="held-out synthetic songs")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per song")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default {DEMO_OVERRIDES['number_of_epochs']}, "
                             f"video {VIDEO_DEMO_OVERRIDES['number_of_epochs']})")
    parser.add_argument("--modality", choices=["audio", "video"], default="audio",
                        help="audio: the MIR-ST500 recipe (make demo); video: the N20EMv2 "
                             "video-only recipe on synthetic lip videos")
    return parser


def make_demo_corpus(folder: Path, args) -> Path:
    from svt.synthetic.singing import make_corpus

    stamp = folder / "corpus.json"
    wanted = {"num_train": args.num_train, "num_test": args.num_test,
              "song_duration_s": args.duration, "seed": args.seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        print(f"[1/3] synthetic corpus already in {folder}")
        return folder
    print(f"[1/3] generating {args.num_train} + {args.num_test} synthetic songs in {folder}")
    make_corpus(folder, layout="mir_st500", num_valid=0, **wanted)
    stamp.write_text(json.dumps(wanted))
    return folder


def run_recipe(output: Path, corpus: Path, encoder: Path, epochs: int):
    overrides = {**DEMO_OVERRIDES, "number_of_epochs": epochs}
    argv = [str(RECIPE / "hparams" / "train_audio_ssl.yaml"),
            "--data_folder", str(corpus), "--ssl_source", str(encoder),
            "--output_folder", str(output / "train"), "--prepare_folder", str(output / "data"),
            "--bundle_folder", str(output / "model"), "--device", "cpu"]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    print("[3/3] training: python MIR-ST500/experiment.py " + " ".join(argv))
    experiment = runpy.run_path(str(RECIPE / "experiment.py"))
    return experiment["main"](argv)


def print_metric_table(title: str, stats: dict):
    print(f"\n{title} (mean over songs, %):")
    print(f"{'':12}" + "".join(f"{m:>10}" for m in METRICS))
    for stat in ("precision", "recall", "f1"):
        print(f"{stat:12}" + "".join(f"{100 * stats[f'{m}_{stat}']:>10.2f}" for m in METRICS))


def shipped_model_scores(corpus: Path) -> dict:
    """Mean scores of the package's default model on the corpus's held-out test songs."""
    import svt
    from svt.notes.formats import read_note_collection
    from svt.notes.scoring import score_songs

    references = read_note_collection(corpus / "Annotations.json")
    songs = sorted(p.name for p in (corpus / "wav16kHz" / "test").iterdir() if p.is_dir())
    print(f"\n[+] the shipped model (svt.transcribe, no training) on the {len(songs)} "
          "held-out songs")
    estimates = {song: svt.transcribe(corpus / "wav16kHz" / "test" / song / "vocals.wav")
                 for song in songs}
    _, summary, _ = score_songs({s: references[s] for s in songs}, estimates)
    return summary["mean"]


def print_results(results: dict, output: Path):
    print_metric_table("Held-out synthetic songs", results["mir_st500_test"])
    print(f"\nPer-song notes and MIDI: {output / 'train' / 'predictions'}")
    print(f"Model bundle: {output / 'model'}  (svt-score REF EST compares note files)")


#: The video demo: the N20EMv2 video-only recipe with a tiny AV-HuBERT (random init, fabricated
#: fairseq-style checkpoint) on synthetic lip videos. The ResNet front-end costs ~0.6 GFLOP a
#: frame whatever the config, so the corpus is small.
VIDEO_DEMO_OVERRIDES = {
    "number_of_epochs": 4,
    "linear_prob_epochs": 1,
    # Small batches: more updates from the few minutes of video a CPU can afford.
    "batch_size": 2,
    "eval_batch_size": 2,
    "num_workers": 0,
    "lr": 1.0,
    "lr_ssl": 0.001,
    "ckpt_interval_minutes": 0,
    # The front-end is trained from scratch here, so it gets its full gradient (the released
    # checkpoints' 0.1 damps fine-tuning of a pre-trained front-end; frozen random features did
    # not learn onsets in 8 epochs).
    "feature_grad_mult": 1.0,
    # Synthetic singers differ widely in skin, teeth and lighting; standardising each clip by its
    # own pixel statistics helps a model trained on few of them generalise to new ones (held-out
    # COn F1 98.6 vs 95.4 with the dataset constants for 24 singers; 35 vs 13 for 8).
    "video_norm": "per_clip",
}


def chance_onset_f1(references, seed=0, trials=20):
    """COn F1 of onsets placed uniformly at random, as many as the reference has: the "chance"
    a video model must beat."""
    import numpy as np

    from svt.notes.scoring import score_song

    rng = np.random.default_rng(seed)
    scores = []
    for notes in references:
        notes = np.asarray(notes, dtype=float)
        end = notes[:, 1].max()
        for _ in range(trials):
            onsets = np.sort(rng.uniform(0, end - 0.1, len(notes)))
            est = np.stack([onsets, onsets + 0.1, notes[:, 2]], axis=1)
            scores.append(score_song(notes, est)["COn_f1"])
    return float(np.mean(scores))


def run_video_demo(args, output: Path):
    import json

    from svt.models.avhubert import AVHubertVideoEncoder
    from svt.synthetic.fairseq_checkpoints import save_fairseq_style_checkpoint
    from svt.synthetic.singing import make_corpus
    from svt.synthetic.tiny_models import tiny_config

    corpus = output / "corpus"
    stamp = corpus / "corpus.json"
    wanted = {"num_train": args.num_train, "num_test": args.num_test,
              "song_duration_s": args.duration, "seed": args.seed, "video": True}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        print(f"[1/3] generating synthetic songs with lip videos in {corpus}")
        make_corpus(corpus, layout="n20emv2", num_train=args.num_train, num_valid=2,
                    num_test=args.num_test, song_duration_s=args.duration, seed=args.seed,
                    with_video=True)
        stamp.write_text(json.dumps(wanted))
    checkpoint = output / "tiny_avhubert.pt"
    print(f"[2/3] building a tiny AV-HuBERT from a config: {checkpoint}")
    config = tiny_config()
    import torch
    torch.manual_seed(args.seed)
    save_fairseq_style_checkpoint(AVHubertVideoEncoder(config), config, checkpoint)
    overrides = {**VIDEO_DEMO_OVERRIDES, "number_of_epochs": args.epochs or
                 VIDEO_DEMO_OVERRIDES["number_of_epochs"]}
    argv = [str(VIDEO_RECIPE / "hparams" / "train_video_ssl.yaml"), "--data_folder", str(corpus),
            "--avhubert_checkpoint", str(checkpoint), "--output_folder", str(output / "train"),
            "--prepare_folder", str(output / "data"), "--bundle_folder", str(output / "model"),
            "--device", "cpu"]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    print("[3/3] training: python N20EMv2/video_only/experiment.py " + " ".join(argv))
    results = runpy.run_path(str(VIDEO_RECIPE / "experiment.py"))["main"](argv)
    annotations = json.loads((corpus / "annotations.json").read_text())
    chance = chance_onset_f1([e["midi"] for e in annotations.values() if e["split"] == "test"])
    print_metric_table("Held-out synthetic songs, video only", results["n20em_video_test"])
    print(f"chance COn F1 (random onsets at the true note rate): {100 * chance:.2f}")
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    pin_torch_threads()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (RECIPE / "experiment.py").is_file():
        raise SystemExit(f"the MIR-ST500 recipe folder is not next to the svt package "
                         f"({RECIPE}); run the demo from a clone of the repository")
    from svt.synthetic.tiny_models import build_tiny_ssl_model

    output = Path(args.output)
    start = time.time()
    if args.modality == "video":
        results = run_video_demo(args, output)
        print(f"\nVideo demo finished in {(time.time() - start) / 60:.1f} min")
        return results
    corpus = make_demo_corpus(output / "corpus", args)
    print(f"[2/3] building a small wav2vec 2.0 encoder from a config in {output / 'init_encoder'}")
    encoder = build_tiny_ssl_model(output / "init_encoder", **DEMO_ENCODER)
    results = run_recipe(output, corpus, encoder,
                         args.epochs or DEMO_OVERRIDES["number_of_epochs"])
    print_results(results, output)
    print_metric_table("Shipped model on the same songs", shipped_model_scores(corpus))
    print(f"\nDemo finished in {(time.time() - start) / 60:.1f} min")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
