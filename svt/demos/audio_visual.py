"""`make demo-av`: the whole audio-visual pipeline under noise on synthetic data, on a CPU.

1. A synthetic N20EMv2-like corpus: many short songs (each its own singer) with singing,
   accompaniment and lip videos, and a synthetic MIR-ST500 of longer songs (`svt.synthetic.singing`).
2. A synthetic MUSAN-like noise corpus, prepared as MUSAN (clips, speaker split, babble), and the
   noisy mixtures of every song for each noise type and SNR (`svt.datasets.musan`).
3. The audio-only recipe (N20EMv2/audio_only, a small wav2vec 2.0 built from a config, trained on
   MIR-ST500 + N20EMv2 as the paper's) and the video-only recipe (N20EMv2/video_only, a tiny
   AV-HuBERT), both on clean input.
4. The noise grid (N20EMv2/audio_visual/run_noise_grid.py): features of both models, then the
   RCA audio-visual model (AV) and the audio-only control (A) per noise condition.
5. The table and the figure in `<output>/grid/` (noise_table.csv / .md, noise_test.png).

Every step is resumable: run it again and finished steps are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from svt.demos import pin_torch_threads
from svt.demos.single_modality import (
    DEMO_ENCODER,
    DEMO_OVERRIDES,
    REPO,
    VIDEO_DEMO_OVERRIDES,
)

AUDIO_RECIPE = REPO / "N20EMv2" / "audio_only"
VIDEO_RECIPE = REPO / "N20EMv2" / "video_only"
AV_RECIPE = REPO / "N20EMv2" / "audio_visual"


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m svt.demos.audio_visual", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="results/demo-av")
    # Many short songs rather than few long ones: every song has its own synthetic singer, and
    # the from-scratch video model needs many singers to generalise to new ones (8 singers x 12 s:
    # held-out COn F1 0-35 %; 24 x 4 s, the same number of frames: 98.6 %).
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-valid", type=int, default=4)
    parser.add_argument("--num-test", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per song")
    # As the paper's audio model ("Ours 2"), the audio recipe mixes MIR-ST500 training songs
    # (here a synthetic MIR-ST500) into N20EMv2's: the few seconds of N20EMv2 teach onsets but
    # hardly any pitch.
    parser.add_argument("--mir-st500-songs", type=int, default=32,
                        help="synthetic MIR-ST500 songs (30 s) mixed into the audio training")
    parser.add_argument("--noise-types", default="accomp,babble,white,natural")
    parser.add_argument("--snrs", default="-10,-5,0,5,10",
                        help="comma-separated SNRs in dB; write --snrs=-10,-5 (with '=')")
    parser.add_argument("--audio-epochs", type=int, default=12)
    parser.add_argument("--video-epochs", type=int, default=4)
    parser.add_argument("--av-epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def as_args(overrides: dict) -> list:
    return [x for key, value in overrides.items() for x in (f"--{key}", str(value))]


def main(argv=None):
    args = build_parser().parse_args(argv)
    pin_torch_threads()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from svt.datasets.musan import prepare_musan, synthesize_noisy_songs
    from svt.models.avhubert import AVHubertVideoEncoder
    from svt.synthetic.fairseq_checkpoints import save_fairseq_style_checkpoint
    from svt.synthetic.musan import make_fake_musan
    from svt.synthetic.singing import make_corpus
    from svt.synthetic.tiny_models import build_tiny_ssl_model, tiny_config

    out = Path(args.output).resolve()
    start = time.time()
    corpus = out / "corpus"
    wanted = {"num_train": args.num_train, "num_valid": args.num_valid,
              "num_test": args.num_test, "song_duration_s": args.duration, "seed": args.seed}
    mir_st500 = out / "mir_st500"
    mir_st500_wanted = {"num_train": args.mir_st500_songs, "num_valid": 0, "num_test": 1,
                        "song_duration_s": 30.0, "seed": args.seed + 1}
    stamp = out / "corpus.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == [wanted, mir_st500_wanted]):
        if out.exists():  # models, features and results of another corpus must not be reused
            print(f"corpus settings changed: removing the previous demo in {out}")
            shutil.rmtree(out)
        print(f"[1/5] synthetic singing + accompaniment + lip videos in {corpus}")
        make_corpus(corpus, layout="n20emv2", with_video=True, **wanted)
        make_corpus(mir_st500, layout="mir_st500", **mir_st500_wanted)
        stamp.write_text(json.dumps([wanted, mir_st500_wanted]))
    noise_types = [t for t in args.noise_types.split(",") if t]
    snrs = [float(s) for s in args.snrs.split(",") if s]
    print("[2/5] synthetic MUSAN, its preparation and the noisy mixtures")
    make_fake_musan(out / "musan", seed=args.seed)
    prepare_musan(out / "musan", out / "musan_prepared", seed=args.seed, progress=False,
                  num_babble={"train": 20, "valid": 5, "test": 5}, speakers_per_babble=5)
    synthesize_noisy_songs(corpus, out / "musan_prepared", noise_types=noise_types, snrs=snrs,
                           seed=args.seed, progress=False)

    prepare = out / "data"
    audio_args = ["hparams/train_audio_ssl.yaml", "--data_folder", str(corpus),
                  "--mir_st500_folder", str(mir_st500), "--mix_train", "True",
                  "--ssl_source", str(out / "init_encoder"), "--output_folder",
                  str(out / "audio"), "--prepare_folder", str(prepare), "--bundle_folder",
                  str(out / "audio" / "model"), "--device", "cpu",
                  *as_args({**DEMO_OVERRIDES, "number_of_epochs": args.audio_epochs})]
    build_tiny_ssl_model(out / "init_encoder", **DEMO_ENCODER)
    # The video demo's tiny AV-HuBERT (D = 32); the fusion projects its features to the audio
    # model's size (`video_size`).
    config = tiny_config()
    checkpoint = out / "tiny_avhubert.pt"
    if not checkpoint.is_file():
        import torch
        torch.manual_seed(args.seed)
        save_fairseq_style_checkpoint(AVHubertVideoEncoder(config), config, checkpoint)
    video_args = ["hparams/train_video_ssl.yaml", "--data_folder", str(corpus),
                  "--avhubert_checkpoint", str(checkpoint), "--output_folder", str(out / "video"),
                  "--prepare_folder", str(prepare), "--bundle_folder",
                  str(out / "video" / "model"), "--device", "cpu",
                  *as_args({**VIDEO_DEMO_OVERRIDES, "number_of_epochs": args.video_epochs})]
    print("[3/5] training the audio-only model (clean)")
    run(AUDIO_RECIPE, audio_args)
    print("[4/5] training the video-only model")
    run(VIDEO_RECIPE, video_args)
    av_args = ["--data_folder", str(corpus), "--prepare_folder", str(prepare),
               # the feature files are named after the models that wrote them
               "--audio_model", DEMO_OVERRIDES["ssl_name"], "--video_model", checkpoint.stem,
               "--init_head_from", str(out / "audio" / "model"), "--device", "cpu",
               "--number_of_epochs", str(args.av_epochs), "--num_workers", "0",
               "--d_model", str(DEMO_ENCODER["hidden_size"]), "--video_size",
               str(config.encoder_embed_dim), "--nhead", "4", "--d_ffn", "192",
               "--lr", "1.0"]
    print("[5/5] the noise grid: features, then AV and A per condition")
    grid = runpy.run_path(str(AV_RECIPE / "run_noise_grid.py"), run_name="demo")["main"]
    grid(["--output", str(out / "grid"), "--noise_types", ",".join(noise_types),
          # "--snrs=" because argparse reads a bare "-10,-5,..." as an option name
          "--snrs=" + ",".join(f"{s:g}" for s in snrs),
          "--audio_args", shlex.join(audio_args), "--video_args", shlex.join(video_args),
          "--av_args", shlex.join(av_args)])
    if "accomp" in noise_types and -10.0 in snrs:
        export_and_transcribe(out, corpus, av_args)
    print(f"\nAudio-visual demo finished in {(time.time() - start) / 60:.1f} min; results in "
          f"{out / 'grid'}")


def export_and_transcribe(out: Path, corpus: Path, av_args):
    """The AV model of the -10 dB accompaniment condition as an inference bundle (the recipe run
    again with --video_bundle: training is finished, so it only exports and tests), then one
    held-out noisy song transcribed with it, as `svt-transcribe --video` would."""
    from svt.datasets.musan import condition_name, noisy_wav_path
    from svt.datasets.n20emv2 import N20EMV2_VIDEO_FILE
    from svt.inference.transcribe import transcribe
    from svt.notes.scoring import score_song

    folder = out / "grid" / "AV" / condition_name("accomp", -10.0)
    run(AV_RECIPE, ["hparams/train_rca.yaml", *av_args, "--noise_type", "accomp", "--snr_db",
                    "-10", "--output_folder", str(folder), "--video_bundle",
                    str(out / "video" / "model")])
    annotations = json.loads((corpus / "annotations.json").read_text())
    song = next(s for s, entry in annotations.items() if entry["split"] == "test")
    noisy = noisy_wav_path(corpus, song, "accomp", -10)
    video = corpus / "data" / song / N20EMV2_VIDEO_FILE
    notes = transcribe(noisy, model=folder / "model", video=video)
    scores = score_song(np.asarray(annotations[song]["midi"], dtype=float), notes)
    print(f"\nAudio-visual bundle: {folder / 'model'}\n{song} under -10 dB accompaniment: "
          f"{len(notes)} notes, COn F1 {100 * scores['COn_f1']:.1f} %. The same from the shell:\n"
          f"  svt-transcribe {noisy} --video {video} --model {folder / 'model'} "
          f"--out-dir {out / 'transcribed'}")


def run(recipe: Path, argv):
    argv = [str(recipe / argv[0]), *argv[1:]]
    return runpy.run_path(str(recipe / "experiment.py"), run_name="demo")["main"](argv)


if __name__ == "__main__":
    main(sys.argv[1:])
