#!/usr/bin/env python3
"""Write the generated evaluation sets the model card measures the shipped model on.

    python benchmarks/make_eval_sets.py OUT_DIR [--sets mixed,legato,...] [--workers N]

Each set is a folder `OUT_DIR/<set>` of songs in the SSVD layout (`<id>.wav` + `<id>.txt`),
written by `svt.synthetic.recorded_singing.make_recorded_corpus` with the style and seed below,
so the same command writes the same files on any machine and with any number of workers; an
interrupted run resumes. None of these seeds is a training seed (the recipe trains on seed 0 and
validates on seed 1). Score a set with

    python benchmarks/bench_real.py OUT_DIR/<set> --systems svt [--model BUNDLE] \
        [--accompaniment-snr-db 0]

The sets sung by recorded voices need Debian's `gcin-voice` and `pyworld` (`legato_recorded`,
`male`), or Festival and its voices (`festival`, `festival_clean`: `apt-get install festival
festvox-kallpc16k festvox-kdlpc16k festvox-italp16k festvox-itapc16k`); the others need nothing
but this package. They check the model against this project's own generator and voices, not
against real recordings: see docs/shipped-model.md for what each one stands for.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.synthetic.festival_voices import (  # noqa: E402
    FESTIVAL_VOICES,
    render_festival_bank,
    split_speakers,
)
from svt.synthetic.recorded_singing import (  # noqa: E402
    CorpusStyle,
    make_recorded_corpus,
    usable_cpu_count,
)

MIXED_CLEAN = dataclasses.replace(CorpusStyle.mixed(), accompaniment_probability=0.0)
LEGATO_CLEAN = CorpusStyle(articulations=(("legato", 1.0),), accompaniment_probability=0.0)
ALL_FESTIVAL_VOICES = tuple(FESTIVAL_VOICES)  # kal, ked, lp, pc


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """One generated evaluation set: how many songs, the corpus seed and the style."""

    num_songs: int
    seed: int
    style: CorpusStyle
    what: str


#: The model card's sets. `festival*` styles get their bank folder at run time (OUT_DIR).
EVAL_SETS = {
    "mixed": EvalSet(20, 777, MIXED_CLEAN,
                     "every articulation, additive voices, no backing tracks of their own"),
    "legato": EvalSet(30, 9999, LEGATO_CLEAN, "legato songs, additive voices"),
    "legato_recorded": EvalSet(
        24, 6161, dataclasses.replace(LEGATO_CLEAN, voice_bank_share=1.0,
                                      voice_bank_speakers=("female", "male")),
        "legato songs sung by gcin-voice's recorded female and male speakers"),
    "male": EvalSet(24, 5555, dataclasses.replace(MIXED_CLEAN, voice_bank_share=1.0,
                                                  voice_bank_speakers=("male",)),
                    "every articulation, gcin-voice's recorded male speaker"),
    "festival": EvalSet(12, 4242, dataclasses.replace(CorpusStyle.mixed(), voice_bank_share=1.0,
                                                      voice_bank_speakers=ALL_FESTIVAL_VOICES),
                        "every articulation, Festival's four diphone voices, the corpus's "
                        "backing tracks in about a third of the songs"),
    "festival_clean": EvalSet(
        12, 4242, dataclasses.replace(MIXED_CLEAN, voice_bank_share=1.0,
                                      voice_bank_speakers=ALL_FESTIVAL_VOICES),
        "the same songs drawn without backing tracks"),
}


def write_eval_set(name: str, out_dir: Path, workers: int = 1) -> Path:
    """Write one set into `out_dir/<name>`; where Festival's voices sing, their syllable bank is
    rendered first into `out_dir/festival_bank` (kept between sets)."""
    eval_set = EVAL_SETS[name]
    style = eval_set.style
    _, festival = split_speakers(style.voice_bank_speakers)
    if festival and style.voice_bank_share > 0:
        bank = out_dir / "festival_bank"
        render_festival_bank(bank, festival, progress=None)
        style = dataclasses.replace(style, festival_bank_folder=str(bank))
    return make_recorded_corpus(out_dir / name, eval_set.num_songs, seed=eval_set.seed,
                                style=style, workers=workers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--sets", default=",".join(EVAL_SETS),
                        help=f"comma-separated, from {', '.join(EVAL_SETS)} (default: all)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes rendering songs (default: every usable core)")
    args = parser.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(names) - set(EVAL_SETS))
    if unknown or not names:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(EVAL_SETS)}")
    workers = args.workers if args.workers is not None else usable_cpu_count()
    if workers < 1:
        parser.error(f"--workers must be at least 1, got {workers}")
    out_dir = Path(args.out_dir)
    for name in names:
        print(f"{name}: {EVAL_SETS[name].what} ({EVAL_SETS[name].num_songs} songs, "
              f"seed {EVAL_SETS[name].seed})", flush=True)
        write_eval_set(name, out_dir, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
