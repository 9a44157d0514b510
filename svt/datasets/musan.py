"""Noise for the noisy-singing experiments: MUSAN preparation and noisy N20EMv2 mixtures.

Two stages, as in the original recipe (`N20EMv2/audio_visual/prepare_musan.py` and
`synthesis_noise.py`), with its bugs fixed and every random choice seeded:

1. `prepare_musan(musan_root, out_root)` cuts MUSAN into 10-s clips, splits the speech recordings
   80/10/10 into train/valid/test, mixes 30-talker babble per split and writes the index files::

       out_root/short-musan/{speech,music,noise}/<subset>/<name>-<i>.wav   10-s clips (16 kHz int16)
       out_root/short-musan/speech/spk.{train,valid,test}   one "speaker" id per line
       out_root/short-musan/babble/wav/<split>-<00001>.wav   babble mixtures, exactly 10 s
       out_root/short-musan/nframes.audio   "<absolute path>\\t<number of samples>" per line, for
                                            every babble, music and noise clip (sorted by path)
       out_root/short-musan/prepare_musan.json   the settings (guards resumed runs)
       out_root/noise/babble.json    {name: {"path", "split", "duration"}}        babble pool
       out_root/noise/natural.json   {"<subset>/<name>": {"path", "split", "duration", "source"}}
                                     natural-noise pool (MUSAN noise/free-sound + noise/sound-bible)

   Paths inside the JSON indexes are relative to `out_root` (the prepared folder can be moved);
   `nframes.audio` keeps the original's absolute paths.

2. `synthesize_noisy_songs(n20emv2_root, musan_out_root)` writes, for every song of
   `annotations.json` and every noise type and SNR::

       data/<song>/noise_data/<type>/SNR_<snr>dB.wav   16 kHz mono 16-bit mixture
       data/<song>/noise_data/<type>/mix.json          settings, noise sources and mixing gains
       data/<song>/noise_data/{babble,natural}/noise.wav   the noise track (as the original)

Documented choices (differences from the original):

* Short MUSAN files (<= 10 s) are **kept as they are** (`<name>-0.wav`, not padded); the original
  dropped them. Zero-padding would put silence into noise clips (it changes their level and what
  the amplitude-defined SNR measures); the consumers handle short clips themselves: babble loops
  them, the natural-noise track centre-pads them (the original's rule), and `nframes.audio` records
  their true length.
* Splits are seeded: speakers (MUSAN file names carry no speaker identity; the "speaker" is the
  source recording, i.e. the clip name without its trailing `-<i>`, as in the original), sorted then
  shuffled with `numpy.random.RandomState(seed)`; first `int(0.8 n)` train, next `int(0.1 n)` valid,
  rest test (each split gets at least one speaker when n >= 3). Natural noise: per subset, sources
  shuffled with a seeded generator, running index `it <= 0.75 n` train, `<= 0.875 n` valid, else
  test (the original's rule); by default only source files of 1..10 s enter the pool (the
  original's pool); `natural_max_source_s=None` also admits the 10-s clips (>= 1 s) of longer
  files, split by source file so that no recording is shared between splits.
* Babble mixture `i` of a split draws `speakers_per_babble` clips (a random permutation's first
  entries, as the original) from that split's speech clips of at least `min_clip_s`, each clip
  shorter than 10 s is **looped** to 10 s (all talkers stay active for the whole mixture; the
  original cut all 30 to the shortest clip and then discarded every mixture not exactly 10 s long),
  and averages them (float mean rounded to int16; the original truncated an int16 mean). Mixture `i`
  is seeded by (seed, split, i) only. The indexes list mixtures 1..num_babble[split] of this run
  (files left by an earlier run with larger counts are not indexed).
* The babble pool is chosen by **each song's own split** (the original used a stale variable), and
  babble and natural pools are read from the prepared folder (the original pointed both at the
  MUSAN root, where the babble pool is empty).
* Mixing follows the original exactly: `f = 1 / (10^(snr/20) + 1)`,
  `noisy = (1 - f) clean + noise * f * L(clean) / (L(noise) + 1e-14)` where `L` is the mean absolute
  value over the whole file (`snr_definition="amplitude"`, the original) or the RMS
  (`snr_definition="power"`, the usual power SNR). The clean part keeps `(1 - f)`.
* Clipping: the mixtures are 16-bit files. If a mixture's peak exceeds full scale, the whole
  mixture (clean and noise parts alike) is scaled down to full scale: the SNR is preserved and no
  sample clips; the factor is recorded as `peak_scale` in `mix.json` (the original wrote float WAVs
  and never clipped or normalised).
* Noise tracks: `accomp` is the song's `accomp.wav` (it must be time-aligned with the vocals: a
  length difference of up to 0.1 s is zero-padded / cut at the end, a larger one is an error);
  `white` is seeded standard-normal noise; `babble`/`natural` follow the original's construction:
  `ceil(N / 160000)` segments, each a random pool clip centre-padded with zeros to 10 s, the last
  segment (length `R`) centre-padded to `R` or cut to its first `R` samples (the original's rule;
  pool clips are never longer than 10 s, so no other cut is needed).
* 16-bit output: `write_audio` rounds samples to the nearest 16-bit step (libsndfile alone
  floors), so the achieved SNR matches the target to ~1e-3 dB.
* Seeding: a noise track depends only on (seed, song, noise type) (and the prepared pools), never on
  the processing order or `jobs`; the same track is used at every SNR of that song and type (as the
  original), so the SNR is the only thing that varies.
* Resuming: existing outputs are skipped. `mix.json` records the settings; a re-run with different
  settings (seed, SNR definition, pool) stops with an error unless `overwrite=True`. Existing
  mixtures without a record (e.g. the `noise_data/` shipped with N20EMv2) are kept untouched and
  reported as "kept". All writes are atomic (`svt.fileio`), so an interrupted run leaves no
  truncated file; `mix.json` is written before the mixtures it describes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from svt.audio import SAMPLE_RATE, audio_info, read_audio, write_audio
from svt.errors import SvtUserError
from svt.fileio import unsafe_name_reason, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

#: Samples of one MUSAN clip / babble mixture / noise-track segment (10 s at 16 kHz).
CLIP_SAMPLES = 10 * SAMPLE_RATE
SPLITS = ("train", "valid", "test")
NOISE_TYPES = ("accomp", "babble", "white", "natural")
DEFAULT_SNRS = (-10, -5, 0, 5, 10)
SNR_DEFINITIONS = ("amplitude", "power")
DEFAULT_NUM_BABBLE = {"train": 8000, "valid": 1000, "test": 1000}
MUSAN_CATEGORIES = ("speech", "music", "noise")
NATURAL_SUBSETS = ("free-sound", "sound-bible")
#: Largest length difference between accomp.wav and vocals.wav that is fixed at the end.
ACCOMP_TOLERANCE_S = 0.1
#: Peak of a mixture after the anti-clipping rescale (the largest positive 16-bit value).
FULL_SCALE = 32767 / 32768
#: The epsilon of the original's noise rescale.
EPS = 1e-14
FORMAT_VERSION = 1


class NoiseError(SvtUserError, ValueError):
    """Bad input folders, empty noise pools or conflicting outputs; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Levels, mixing and SNR
# --------------------------------------------------------------------------------------------

def _check_definition(definition: str) -> str:
    if definition not in SNR_DEFINITIONS:
        raise NoiseError(f"unknown SNR definition {definition!r}; use one of {SNR_DEFINITIONS}")
    return definition


def signal_level(x, definition: str = "amplitude") -> float:
    """Mean absolute value (`"amplitude"`, the original's SNR) or RMS (`"power"`) of `x`."""
    _check_definition(definition)
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 0.0
    if definition == "amplitude":
        return float(np.mean(np.abs(x)))
    return float(np.sqrt(np.mean(x * x)))


def mix_at_snr(clean, noise, snr_db: float, definition: str = "amplitude"):
    """Mix `noise` into `clean` at `snr_db` with the original's rule.

    `f = 1 / (10^(snr/20) + 1)`; `noisy = (1 - f) clean + noise * f L(clean) / (L(noise) + 1e-14)`,
    `L` = `signal_level(., definition)`, so `L(clean part) / L(noise part) = 10^(snr/20)` (a power
    ratio of `10^(snr/10)` for `"power"`). Returns `(noisy, clean_gain, noise_gain)` (float64).
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise NoiseError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    f = 1.0 / (10.0 ** (float(snr_db) / 20.0) + 1.0)
    clean_gain = 1.0 - f
    noise_gain = f * signal_level(clean, definition) / (signal_level(noise, definition) + EPS)
    return clean_gain * clean + noise_gain * noise, clean_gain, noise_gain


def measure_snr(clean, noisy, definition: str = "amplitude", clean_gain: float = 1.0) -> float:
    """SNR (dB) of `noisy` whose clean part is `clean_gain * clean` (the rest is the noise).

    `"amplitude"`: `20 log10(mean|c| / mean|n|)` (the original's definition); `"power"`:
    `10 log10(sum c^2 / sum n^2)`. `clean_gain` is the `clean_gain` of `mix.json` for the files
    written by `synthesize_noisy_songs` (`(1 - f)` times any anti-clipping scale). `inf` when the
    noise part is zero.
    """
    clean = clean_gain * np.asarray(clean, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=np.float64)
    if clean.shape != noisy.shape:
        raise NoiseError(f"clean {clean.shape} and noisy {noisy.shape} differ in shape")
    lc, ln = signal_level(clean, definition), signal_level(noisy - clean, definition)
    if ln == 0.0:
        return math.inf
    if lc == 0.0:
        return -math.inf
    return 20.0 * math.log10(lc / ln)


# --------------------------------------------------------------------------------------------
# Seeding and parallel execution
# --------------------------------------------------------------------------------------------

def _key_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def keyed_rng(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on `seed` and `keys` (strings or ints)."""
    words = [int(seed)] + [k if isinstance(k, int) else _key_int(str(k)) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NoiseError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _num_jobs(jobs) -> int:
    jobs = int(jobs)
    return max(1, os.cpu_count() or 1) if jobs <= 0 else jobs


def _run_chunk(fn, chunk):
    return [fn(task) for task in chunk]


def _map(fn, tasks: list, jobs: int = 1, desc: str = "", progress: bool = True,
         slurm: dict | None = None) -> list:
    """`[fn(t) for t in tasks]` on local processes (`jobs`) or a Slurm job array (`slurm`)."""
    if not tasks:
        return []
    if slurm:
        return _map_slurm(fn, tasks, desc=desc, progress=progress, **slurm)
    jobs = min(_num_jobs(jobs), len(tasks))
    results = []
    with tqdm(total=len(tasks), desc=desc, disable=not progress, unit="task") as bar:
        if jobs == 1:
            for task in tasks:
                results.append(fn(task))
                bar.update()
        else:
            from joblib import Parallel, delayed

            parallel = Parallel(n_jobs=jobs, return_as="generator")
            for result in parallel(delayed(fn)(task) for task in tasks):
                results.append(result)
                bar.update()
    return results


def _map_slurm(fn, tasks, partition: str, nshard: int = 100, timeout_min: int = 240,
               array_parallelism: int = 100, desc: str = "", progress: bool = True) -> list:
    try:
        import submitit
    except ImportError:
        raise NoiseError(
            "Slurm execution (slurm_partition / --slurm_partition) needs the `submitit` package, "
            "which is not installed: `pip install submitit`, or run on local processes with "
            "jobs=N / --jobs N instead.") from None
    nshard = max(1, min(int(nshard), len(tasks)))
    size = math.ceil(len(tasks) / nshard)
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    log_dir = tempfile.mkdtemp(prefix="submitit-noise-", dir=os.getcwd())
    executor = submitit.AutoExecutor(folder=log_dir)
    executor.update_parameters(slurm_partition=partition, timeout_min=int(timeout_min),
                               slurm_array_parallelism=int(array_parallelism), cpus_per_task=1)
    jobs = executor.map_array(_run_chunk, [fn] * len(chunks), chunks)
    logger.info("%s: submitted %d Slurm jobs (partition %s, logs in %s)", desc, len(jobs),
                partition, log_dir)
    results = []
    for job in tqdm(jobs, desc=desc, disable=not progress, unit="shard"):
        results.extend(job.result())
    shutil.rmtree(log_dir, ignore_errors=True)
    return results


# --------------------------------------------------------------------------------------------
# MUSAN preparation
# --------------------------------------------------------------------------------------------

def _clip_frames(num_frames: int) -> list[int]:
    """Lengths of the 10-s pieces of a file of `num_frames` samples (a short file: itself)."""
    n = max(1, math.ceil(num_frames / CLIP_SAMPLES))
    return [min(CLIP_SAMPLES, num_frames - i * CLIP_SAMPLES) for i in range(n)]


def _musan_sources(musan_root: Path) -> list[str]:
    if not musan_root.is_dir():
        raise NoiseError(f"{musan_root}: no such folder; --musan must be the MUSAN root "
                         "(holding speech/, music/ and noise/).")
    missing = [c for c in MUSAN_CATEGORIES if not (musan_root / c).is_dir()]
    if missing:
        raise NoiseError(f"{musan_root}: not a MUSAN folder, {', '.join(m + '/' for m in missing)} "
                         "missing (expected speech/, music/ and noise/ with subset folders of "
                         ".wav files).")
    sources = []
    for cat in MUSAN_CATEGORIES:
        files = sorted(p for p in (musan_root / cat).glob("*/*")
                       if p.suffix.lower() == ".wav" and p.is_file())
        if not files:
            raise NoiseError(f"{musan_root / cat}: no .wav files in its subset folders "
                             f"(expected {cat}/<subset>/*.wav).")
        sources += [p.relative_to(musan_root).as_posix() for p in files]
    return sources


def _cut_source(task: dict) -> dict:
    """Cut one MUSAN file into 10-s clips (kept whole when it is not longer than 10 s)."""
    src = Path(task["musan_root"]) / task["source"]
    rate, frames, _ = audio_info(src)
    if rate != SAMPLE_RATE:
        raise NoiseError(f"{src}: {rate} Hz; MUSAN files are 16 kHz, convert this one "
                         "(e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`).")
    rel = Path(task["source"])
    stem = rel.stem
    result = {"source": task["source"], "frames": frames, "clips": [], "written": 0}
    if frames == 0:
        logger.warning("%s: empty file, skipped", src)
        return result
    lengths = _clip_frames(frames)
    out_dir = Path(task["out_root"]) / "short-musan" / rel.parent
    clips = [(f"short-musan/{rel.parent.as_posix()}/{stem}-{i}.wav", n)
             for i, n in enumerate(lengths)]
    result["clips"] = clips
    todo = [i for i, (c, _) in enumerate(clips)
            if task["overwrite"] or not (Path(task["out_root"]) / c).is_file()]
    if todo:
        wav = read_audio(src, SAMPLE_RATE)
        for i in todo:
            write_audio(out_dir / f"{stem}-{i}.wav", wav[i * CLIP_SAMPLES:(i + 1) * CLIP_SAMPLES],
                        SAMPLE_RATE)
        result["written"] = len(todo)
    return result


def speaker_split(speakers: Iterable[str], seed: int) -> dict[str, list[str]]:
    """Seeded 80/10/10 split of speaker ids (sorted, then `RandomState(seed).shuffle`)."""
    spks = sorted(set(speakers))
    n = len(spks)
    if n < 3:
        raise NoiseError(f"only {n} MUSAN speech recording(s); at least 3 are needed to give "
                         "train, valid and test babble speakers.")
    np.random.RandomState(seed).shuffle(spks)  # the original's (unseeded) shuffle, seeded
    n_train, n_valid = int(n * 0.8), int(n * 0.1)
    n_valid = max(n_valid, 1)
    if n - n_train - n_valid < 1:
        n_train = n - n_valid - 1
    return {"train": spks[:n_train], "valid": spks[n_train:n_train + n_valid],
            "test": spks[n_train + n_valid:]}


def _speaker_of(source: str) -> str:
    """The original's speaker id (a clip name without its trailing `-<i>`): the source's name."""
    return Path(source).stem


def babble_selection(seed: int, split: str, index: int, pool_size: int, k: int) -> np.ndarray:
    """Pool indices of the clips that make babble mixture `index` (0-based) of `split`."""
    rng = keyed_rng(seed, f"babble/{split}", int(index))
    return rng.permutation(pool_size)[:k]


def _make_babble(task: dict) -> int:
    out_root, pool, written = Path(task["out_root"]), task["pool"], 0
    read = functools.lru_cache(maxsize=256)(lambda rel: read_audio(out_root / rel, SAMPLE_RATE))
    for i in range(task["start"], task["stop"]):
        out = out_root / babble_path(task["split"], i)
        if out.is_file() and not task["overwrite"]:
            continue
        idx = babble_selection(task["seed"], task["split"], i, len(pool), task["k"])
        total = np.zeros(CLIP_SAMPLES, dtype=np.float64)
        for j in idx:
            clip = read(pool[j])
            total += np.resize(clip, CLIP_SAMPLES) if len(clip) < CLIP_SAMPLES else clip
        write_audio(out, total / len(idx), SAMPLE_RATE)
        written += 1
    return written


def babble_path(split: str, index: int) -> str:
    """Relative path of babble mixture `index` (0-based) of `split`."""
    return f"short-musan/babble/wav/{split}-{index + 1:05d}.wav"


def _natural_index(clips_by_source: dict, seed: int, min_clip_s: float,
                   max_source_s: float | None) -> dict:
    index = {}
    for subset in NATURAL_SUBSETS:
        prefix = f"noise/{subset}/"
        sources = sorted(s for s in clips_by_source if s.startswith(prefix))
        eligible = {}
        for src in sources:
            frames, clips = clips_by_source[src]
            if max_source_s is not None and frames > max_source_s * SAMPLE_RATE:
                continue
            keep = [(c, n) for c, n in clips if n >= min_clip_s * SAMPLE_RATE]
            if keep:
                eligible[src] = keep
        keys = sorted(eligible)
        order = [keys[i] for i in keyed_rng(seed, f"natural/{subset}").permutation(len(keys))]
        n = len(order)
        for it, src in enumerate(order):
            split = "train" if it <= 0.75 * n else "valid" if it <= 0.875 * n else "test"
            for clip, frames in eligible[src]:
                index[f"{subset}/{Path(clip).stem}"] = {
                    "path": clip, "split": split, "duration": frames / SAMPLE_RATE,
                    "source": src}
    return dict(sorted(index.items()))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def _json_text(obj) -> str:
    return json.dumps(obj, indent=1) + "\n"


def prepare_musan(musan_root, out_root, jobs: int = 1, seed: int = 1234,
                  num_babble: Mapping[str, int] | None = None, speakers_per_babble: int = 30,
                  min_clip_s: float = 1.0, natural_max_source_s: float | None = 10.0,
                  overwrite: bool = False, progress: bool = True,
                  slurm_partition: str | None = None, slurm_nshard: int = 100,
                  slurm_timeout_min: int = 240) -> dict:
    """Prepare MUSAN for `synthesize_noisy_songs` (see the module docstring for the layout).

    Args:
        musan_root: MUSAN root (speech/, music/, noise/ with subset folders of 16 kHz wavs).
        out_root: where `short-musan/` and `noise/` are written (may equal `musan_root`).
        jobs: local worker processes (<= 0: one per CPU).
        seed: seeds the speaker split, the babble mixtures and the natural-noise split.
        num_babble: babble mixtures per split (missing splits: 8000/1000/1000).
        speakers_per_babble: clips per babble mixture (30).
        min_clip_s: shortest speech clip used in babble, and natural-noise minimum (1 s).
        natural_max_source_s: natural pool = noise files of `min_clip_s`..this many seconds (the
            original's pool, 10 s); None: every 10-s clip (>= min_clip_s) of every noise file.
        overwrite: redo every output (otherwise existing clips and mixtures are kept).
        progress: tqdm progress bars.
        slurm_partition: run the clip cutting and the babble mixing as a Slurm job array through
            `submitit` (`slurm_nshard` array tasks) instead of local processes.

    Returns `{"short_musan", "nframes", "babble_index", "natural_index", "speakers": {split: n},
    "clips": {category: n}, "babble": {split: n}, "written": {"clips": n, "babble": n}}`.
    """
    musan_root, out_root = Path(musan_root), Path(out_root)
    from svt.datasets.layout import check_output_folder  # PrepareError: a file, not writable
    check_output_folder(out_root, "out")
    seed = _check_seed(seed)
    counts = dict(DEFAULT_NUM_BABBLE)
    for split, n in (num_babble or {}).items():
        if split not in SPLITS:
            raise NoiseError(f"num_babble: unknown split {split!r}; use {SPLITS}")
        if int(n) < 0:
            raise NoiseError(f"num_babble[{split!r}] must be >= 0, got {n}")
        counts[split] = int(n)
    if int(speakers_per_babble) < 1:
        raise NoiseError(f"speakers_per_babble must be >= 1, got {speakers_per_babble}")
    sources = _musan_sources(musan_root)
    short = out_root / "short-musan"
    settings = {"format": FORMAT_VERSION, "seed": seed,
                "speakers_per_babble": int(speakers_per_babble), "min_clip_s": float(min_clip_s),
                "natural_max_source_s": natural_max_source_s}
    settings_file = short / "prepare_musan.json"
    if settings_file.is_file() and not overwrite:
        old = json.loads(settings_file.read_text())
        if old != settings:
            raise NoiseError(
                f"{out_root} was prepared with other settings ({old}); now {settings}. Use another "
                "--out folder, or overwrite=True / --overwrite to redo everything.")
    _write_if_changed(settings_file, _json_text(settings))
    slurm = ({"partition": slurm_partition, "nshard": slurm_nshard,
              "timeout_min": slurm_timeout_min} if slurm_partition else None)

    # 1. 10-s clips
    tasks = [{"musan_root": str(musan_root), "out_root": str(out_root), "source": s,
              "overwrite": bool(overwrite)} for s in sources]
    cut = _map(_cut_source, tasks, jobs, "cutting MUSAN into 10-s clips", progress, slurm)
    clips_by_source = {r["source"]: (r["frames"], r["clips"]) for r in cut}

    # 2. speaker split
    speech = [s for s in sources if s.startswith("speech/") and clips_by_source[s][1]]
    spk_split = speaker_split((_speaker_of(s) for s in speech), seed)
    for split in SPLITS:
        _write_if_changed(short / "speech" / f"spk.{split}",
                          "".join(f"{spk}\n" for spk in spk_split[split]))

    # 3. babble
    spk_of = {spk: split for split in SPLITS for spk in spk_split[split]}
    min_frames = min_clip_s * SAMPLE_RATE
    babble_tasks = []
    for split in SPLITS:
        pool = sorted(c for s in speech for c, n in clips_by_source[s][1]
                      if spk_of[_speaker_of(s)] == split and n >= min_frames)
        if counts[split] and not pool:
            raise NoiseError(f"no speech clip of at least {min_clip_s} s for the {split} "
                             "speakers: cannot make babble (lower min_clip_s).")
        if counts[split] and len(pool) < speakers_per_babble:
            logger.warning("%s babble: only %d speech clips, each mixture uses all of them "
                           "(speakers_per_babble=%d)", split, len(pool), speakers_per_babble)
        chunk = 200
        for start in range(0, counts[split], chunk):
            babble_tasks.append({"out_root": str(out_root), "split": split, "pool": pool,
                                 "start": start, "stop": min(counts[split], start + chunk),
                                 "seed": seed, "k": int(speakers_per_babble),
                                 "overwrite": bool(overwrite)})
    babble_written = sum(_map(_make_babble, babble_tasks, jobs, "mixing babble", progress,
                              slurm))

    # 4. frame counts and pool indexes
    entries = [(babble_path(split, i), CLIP_SAMPLES) for split in SPLITS
               for i in range(counts[split])]
    entries += [clip for s in sources if not s.startswith("speech/")
                for clip in clips_by_source[s][1]]
    base = out_root.resolve()
    nframes = short / "nframes.audio"
    _write_if_changed(nframes, "".join(f"{(base / c).as_posix()}\t{n}\n"
                                       for c, n in sorted(entries)))
    babble_index = {Path(babble_path(split, i)).stem: {
        "path": babble_path(split, i), "split": split, "duration": CLIP_SAMPLES / SAMPLE_RATE}
        for split in SPLITS for i in range(counts[split])}
    natural_index = _natural_index(clips_by_source, seed, min_clip_s, natural_max_source_s)
    babble_json = out_root / "noise" / "babble.json"
    natural_json = out_root / "noise" / "natural.json"
    _write_if_changed(babble_json, _json_text(babble_index))
    _write_if_changed(natural_json, _json_text(natural_index))
    for split in SPLITS:
        if not any(v["split"] == split for v in natural_index.values()):
            logger.warning("natural noise pool: no clip for split %s (too few MUSAN noise "
                           "files); synthesising natural noise for %s songs will fail",
                           split, split)

    n_clips = {c: sum(len(clips_by_source[s][1]) for s in sources if s.startswith(c + "/"))
               for c in MUSAN_CATEGORIES}
    return {"short_musan": str(short), "nframes": str(nframes), "babble_index": str(babble_json),
            "natural_index": str(natural_json),
            "speakers": {s: len(spk_split[s]) for s in SPLITS}, "clips": n_clips,
            "babble": counts, "written": {"clips": sum(r["written"] for r in cut),
                                          "babble": babble_written}}


# --------------------------------------------------------------------------------------------
# Noisy N20EMv2 songs
# --------------------------------------------------------------------------------------------

def snr_name(snr: float) -> str:
    """`SNR_<snr>dB.wav`: integers without decimals (`SNR_-10dB.wav`), others as `%g`."""
    snr = float(snr)
    text = str(int(snr)) if snr.is_integer() else f"{snr:g}"
    return f"SNR_{text}dB.wav"


def noise_track(kind: str, num_samples: int, rng: np.random.Generator, pool=None,
                read=None, accomp=None):
    """Build the noise track of one song: `(track float64, sources list for mix.json)`.

    `pool`: sorted `[(key, path)]` of the song's split (babble/natural); `read(path)` reads a clip.
    """
    if kind == "white":
        return rng.standard_normal(num_samples), []
    if kind == "accomp":
        return np.asarray(accomp, dtype=np.float64), []
    track = np.zeros(num_samples, dtype=np.float64)
    sources = []
    n_seg = math.ceil(num_samples / CLIP_SAMPLES)
    for s in range(n_seg):
        length = CLIP_SAMPLES if s < n_seg - 1 else num_samples - (n_seg - 1) * CLIP_SAMPLES
        key, path = pool[int(rng.integers(len(pool)))]
        clip = read(path)
        if len(clip) <= length:
            before = (length - len(clip)) // 2
            piece = np.zeros(length, dtype=np.float64)
            piece[before:before + len(clip)] = clip
        else:
            before, piece = 0, clip[:length]
        track[s * CLIP_SAMPLES:s * CLIP_SAMPLES + length] = piece
        sources.append({"key": key, "start": s * CLIP_SAMPLES, "length": length,
                        "pad_before": before})
    return track, sources


def _index_path(musan_out_root, kind: str) -> Path:
    if musan_out_root is None:
        raise NoiseError(f"{kind} noise needs the prepared MUSAN folder (musan_out_root / "
                         "--musan_prepared): run prepare_musan.py --musan MUSAN --out DIR first.")
    path = Path(musan_out_root) / "noise" / f"{kind}.json"
    if not path.is_file():
        raise NoiseError(f"{path} not found: --musan_prepared must be the --out folder of "
                         "prepare_musan.py (holding short-musan/ and noise/); run it first.")
    return path


@functools.lru_cache(maxsize=8)
def _pools(index_path: str, mtime_ns: int) -> dict:
    """`{split: [(key, absolute path)]}` (sorted by key) from a babble/natural index JSON."""
    path = Path(index_path)
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise NoiseError(f"{path}: not valid JSON ({err}); re-run prepare_musan.py") from None
    root = path.parent.parent
    pools = {split: [] for split in SPLITS}
    for key, item in sorted(index.items()):
        if isinstance(item, dict) and item.get("split") in pools:
            pools[item["split"]].append((key, str(root / item["path"])))
    return pools


def _load_pools(index_path) -> dict:
    return _pools(str(index_path), Path(index_path).stat().st_mtime_ns)


def _pool_digest(pool) -> str:
    return hashlib.sha256("\n".join(k for k, _ in pool).encode()).hexdigest()[:16]


def _load_annotations(n20emv2_root: Path) -> dict:
    ann = n20emv2_root / "annotations.json"
    if not n20emv2_root.is_dir():
        raise NoiseError(f"{n20emv2_root}: no such folder; --n20emv2 must be the N20EMv2 root "
                         "(annotations.json + data/<entry>/vocals.wav).")
    if not ann.is_file():
        raise NoiseError(f"{ann} not found; --n20emv2 must be the N20EMv2 root "
                         "(annotations.json + data/<entry>/vocals.wav).")
    try:
        data = json.loads(ann.read_text())
    except json.JSONDecodeError as err:
        raise NoiseError(f"{ann}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not data:
        raise NoiseError(f"{ann}: expected a non-empty object {{entry: {{\"midi\", \"split\"}}}}")
    unsafe = [k for k in data if unsafe_name_reason(k)]
    if unsafe:
        raise NoiseError(f"{ann}: song id(s) {unsafe[:5]} would name paths outside "
                         f"{n20emv2_root / 'data'} (path separators or '..'); fix the annotation "
                         "keys")
    bad = [k for k, v in data.items() if not isinstance(v, dict) or "split" not in v]
    if bad:
        raise NoiseError(f"{ann}: entries without a \"split\" field: {', '.join(bad[:5])}")
    return data


def _synth_task(task: dict) -> dict:
    """All SNRs of one (song, noise type)."""
    out_dir = Path(task["out_dir"])
    kind, snrs = task["noise_type"], task["snrs"]
    settings = {"format": FORMAT_VERSION, "noise_type": kind, "seed": task["seed"],
                "snr_definition": task["definition"], "pool": task["pool_digest"]}
    record_path = out_dir / "mix.json"
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
    except json.JSONDecodeError:
        record = {}
    if record is not None and record.get("settings") != settings:
        if not task["overwrite"]:
            raise NoiseError(
                f"{out_dir}: made with other settings ({record.get('settings')}); now {settings}. "
                "Use overwrite=True / --overwrite to replace them.")
        record = None
    had_record = record is not None
    mixtures = dict(record["mixtures"]) if record else {}
    stats = {"written": 0, "skipped": 0, "kept": 0}
    todo = []
    for snr in snrs:
        name = snr_name(snr)
        if task["overwrite"] or not (out_dir / name).is_file():
            todo.append(snr)
        elif name in mixtures:
            stats["skipped"] += 1
        else:
            stats["kept"] += 1  # not made by this tool (e.g. the released noise_data/)
    noise_file = out_dir / "noise.wav"
    want_noise_file = kind in ("babble", "natural")
    if not todo and (not want_noise_file or noise_file.is_file()):
        return stats

    clean = read_audio(task["vocals"], SAMPLE_RATE).astype(np.float64)
    if clean.size == 0:
        raise NoiseError(f"{task['vocals']}: empty audio")
    accomp = None
    if kind == "accomp":
        accomp = read_audio(task["accomp"], SAMPLE_RATE)
        diff = len(accomp) - len(clean)
        if abs(diff) > ACCOMP_TOLERANCE_S * SAMPLE_RATE:
            raise NoiseError(
                f"{task['accomp']}: {len(accomp)} samples but the vocals have {len(clean)}; the "
                "accompaniment must be time-aligned with vocals.wav (same length).")
        accomp = np.pad(accomp, (0, max(0, -diff)))[:len(clean)]
    read = functools.lru_cache(maxsize=64)(lambda p: read_audio(p, SAMPLE_RATE))
    rng = keyed_rng(task["seed"], "song", task["song"], kind)
    pool = _load_pools(task["index"])[task["split"]] if task["index"] else None
    if pool is not None and _pool_digest(pool) != task["pool_digest"]:
        raise NoiseError(f"{task['index']} changed while synthesising; run again")
    noise, sources = noise_track(kind, len(clean), rng, pool, read, accomp)
    if signal_level(clean, task["definition"]) == 0.0:
        logger.warning("%s: silent vocals; its %s mixtures are silent too", task["song"], kind)
    elif signal_level(noise, task["definition"]) == 0.0:
        logger.warning("%s: the %s noise is silent; its mixtures equal the scaled vocals",
                       task["song"], kind)

    outputs = {}
    for snr in todo:
        noisy, cg, ng = mix_at_snr(clean, noise, snr, task["definition"])
        peak = float(np.max(np.abs(noisy)))
        scale = FULL_SCALE / peak if peak > FULL_SCALE else 1.0
        name = snr_name(snr)
        outputs[name] = noisy * scale
        mixtures[name] = {"snr_db": float(snr), "clean_gain": cg * scale,
                          "noise_gain": ng * scale, "peak_scale": scale}
    record = {"settings": settings, "song": task["song"], "split": task["split"],
              "noise_sources": sources, "mixtures": dict(sorted(mixtures.items()))}
    write_json_atomic(record_path, record, indent=1)  # first: a crash leaves a valid record
    for name, wav in outputs.items():
        write_audio(out_dir / name, wav, SAMPLE_RATE)
    stats["written"] += len(outputs)
    # noise.wav goes with the recorded mixtures (a foreign one is replaced once we add ours)
    if want_noise_file and (task["overwrite"] or not noise_file.is_file()
                            or (outputs and not had_record)):
        write_audio(noise_file, noise, SAMPLE_RATE)
    return stats


def synthesize_noisy_songs(n20emv2_root, musan_out_root=None,
                           noise_types: Sequence[str] = NOISE_TYPES,
                           snrs: Sequence[float] = DEFAULT_SNRS,
                           snr_definition: str = "amplitude", seed: int = 1234, jobs: int = 1,
                           overwrite: bool = False, progress: bool = True) -> dict:
    """Write the noisy mixtures of every song in `n20emv2_root/annotations.json`.

    Output: `data/<song>/noise_data/<type>/SNR_<snr>dB.wav` (+ `mix.json`, and `noise.wav` for
    babble and natural). `musan_out_root` is the `out_root` of `prepare_musan` (needed for babble
    and natural). Babble/natural clips come from the pool of the song's own split; songs whose
    split is not train/valid/test get no babble/natural mixtures (warning). Returns
    `{"songs", "tasks", "written", "skipped", "kept"}` (kept: existing files not made here).
    """
    root = Path(n20emv2_root)
    seed = _check_seed(seed)
    _check_definition(snr_definition)
    noise_types = list(dict.fromkeys(noise_types))
    unknown = [t for t in noise_types if t not in NOISE_TYPES]
    if unknown or not noise_types:
        raise NoiseError(f"unknown noise type(s) {unknown or noise_types}; use {NOISE_TYPES}")
    try:
        snrs = list(dict.fromkeys(float(s) for s in snrs))
    except (TypeError, ValueError):
        raise NoiseError(f"SNRs must be numbers, got {snrs!r}") from None
    if not snrs or not all(math.isfinite(s) for s in snrs):
        raise NoiseError(f"SNRs must be finite numbers, got {snrs!r}")
    annotations = _load_annotations(root)
    songs = sorted(annotations)
    missing = [s for s in songs if not (root / "data" / s / "vocals.wav").is_file()]
    if missing:
        raise NoiseError(f"{len(missing)} song(s) without data/<entry>/vocals.wav under {root}: "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if "accomp" in noise_types:
        missing = [s for s in songs if not (root / "data" / s / "accomp.wav").is_file()]
        if missing:
            raise NoiseError(
                f"accomp noise: {len(missing)} song(s) without data/<entry>/accomp.wav: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (leave 'accomp' "
                "out of the noise types, or add the accompaniment tracks).")
    indexes = {t: _index_path(musan_out_root, t) for t in noise_types
               if t in ("babble", "natural")}
    pools = {t: _load_pools(path) for t, path in indexes.items()}
    odd = [s for s in songs if annotations[s]["split"] not in SPLITS]
    if odd and pools:
        logger.warning("%d song(s) with a split other than train/valid/test get no %s noise: %s",
                       len(odd), "/".join(pools), ", ".join(odd[:5]))
    tasks = []
    for kind in noise_types:
        for song in songs:
            split = annotations[song]["split"]
            pool = []
            if kind in pools:
                if split not in SPLITS:
                    continue
                pool = pools[kind][split]
                if not pool:
                    raise NoiseError(
                        f"the {kind} noise pool of split {split!r} (song {song}) is empty in "
                        f"{indexes[kind]}; prepare MUSAN with "
                        "more babble mixtures / noise files for that split.")
            song_dir = root / "data" / song
            tasks.append({"song": song, "split": split, "noise_type": kind, "snrs": snrs,
                          "definition": snr_definition, "seed": seed,
                          "overwrite": bool(overwrite),
                          "index": str(indexes[kind]) if kind in pools else None,
                          "pool_digest": _pool_digest(pool) if kind in pools else None,
                          "vocals": str(song_dir / "vocals.wav"),
                          "accomp": str(song_dir / "accomp.wav"),
                          "out_dir": str(song_dir / "noise_data" / kind)})
    results = _map(_synth_task, tasks, jobs, "synthesising noisy songs", progress)
    summary = {"songs": len(songs), "tasks": len(tasks)}
    for key in ("written", "skipped", "kept"):
        summary[key] = sum(r[key] for r in results)
    return summary


# --------------------------------------------------------------------------------------------
# Noise conditions as the audio-visual stage names them
# --------------------------------------------------------------------------------------------

def condition_name(noise_type=None, snr_db=None) -> str:
    """`clean`, or `<type>/SNR_<snr>dB` for a noisy condition (used for feature file names)."""
    if not noise_type or noise_type == "clean":
        return "clean"
    if noise_type not in NOISE_TYPES:
        raise NoiseError(f"unknown noise type {noise_type!r}; choose from {NOISE_TYPES}")
    if snr_db is None:
        raise NoiseError(f"noise type {noise_type!r} needs an SNR (snr_db)")
    return f"{noise_type}/{snr_name(snr_db)[:-len('.wav')]}"


def features_name(model: str, noise_type=None, snr_db=None) -> str:
    """Name of the audio features a model wrote under a condition: `<model>/clean_feats`,
    `<model>/accomp/SNR_-10dB_feats`, ... (`<features_folder>/n20emv2/<song>/<name>.npy`), so
    the features of two audio models never overwrite each other."""
    return f"{model}/{condition_name(noise_type, snr_db)}_feats"


def noisy_wav_path(n20emv2_root, song: str, noise_type: str, snr_db) -> Path:
    """`<root>/data/<song>/noise_data/<type>/SNR_<snr>dB.wav` (made by `synthesize_noisy_songs`)."""
    return Path(n20emv2_root) / "data" / song / "noise_data" / noise_type / snr_name(snr_db)
