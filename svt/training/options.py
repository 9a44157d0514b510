"""Checks of a recipe's options (its hparams YAML and the `--key value` overrides) before anything
is built, prepared or trained.

HyperPyYAML builds every object of a YAML as it loads it (an SSL encoder of a gigabyte among
them) and only then do the recipes see the values; a misspelt option, `--lr xyz` or an unknown
`selection_metric` used to surface minutes (or an epoch) later as a traceback. Here the YAML is
read with ruamel's round-trip loader, which keeps HyperPyYAML's tags (`!new:`, `!ref`, ...) as
plain tagged nodes without constructing anything, and the override strings are checked against it:

* every override names a key of the YAML (or a close match is suggested);
* an override has the type of the YAML's default value (an integer for `number_of_epochs: 10`, a
  number for `lr: 0.0003`, True/False for `freeze_encoder: False`, a list, a mapping), unless the
  default is null or a tag; a bare `--flag` of a True/False option means True, as it does for
  the prepare.py scripts (`--skip_invalid`, `--separate`);
* a `!PLACEHOLDER` key (`data_folder`) is given;
* options with a fixed set of values (`selection_metric`, `sorting`, `decoder`, ...) hold one;
* input folders and model bundles exist, and `--device` names a device this machine has.

Each failure is an `OptionError` naming the option and what to give instead.
"""
from __future__ import annotations

import difflib
import io
import re
from collections.abc import Mapping
from pathlib import Path

import ruamel.yaml
from hyperpyyaml import resolve_references
from speechbrain.utils.run_opts import HELP_TEXTS

from svt.data.utterances import MAX_DUR_THRESHOLD, MAX_FRAME_RATE
from svt.datasets.musan import NOISE_TYPES
from svt.errors import SvtUserError
from svt.inference.bundle import BundleError, check_bundle_target, find_bundle
from svt.inference.transcribe import resolve_device
from svt.notes.decoding import DECODERS, MAX_ONSET_DELAY
from svt.training.brain import SELECTION_KEYS
from svt.training.fusion import SYSTEMS


class OptionError(SvtUserError, ValueError):
    """A recipe option (an hparams YAML key or a command-line override) that cannot work; the
    message names the option and what to give instead."""


#: Options with a fixed set of values: `{key: (accepted values, what they mean)}`.
CHOICES = {
    "selection_metric": (tuple(SELECTION_KEYS),
                         "the checkpoint kept for testing has the lowest validation loss or the "
                         "highest validation COnPOff F1"),
    "sorting": (("ascending", "descending", "random"), "the order of the training utterances"),
    "decoder": (DECODERS, "how frame predictions become notes"),
    "corpus_style": (("mixed", "detached", "clean"), "how the generated training songs are "
                     "sung and recorded (svt.synthetic.recorded_singing.CORPUS_STYLES)"),
    "distill_corpus_style": (("mixed", "detached", "clean"), "how the songs FCPE is distilled "
                             "on are sung and recorded (svt.synthetic.recorded_singing."
                             "CORPUS_STYLES)"),
    "video_norm": (("dataset", "per_clip"), "the normalisation of the lip videos"),
    "system": (SYSTEMS, "AV: audio + video fusion; A: the audio-only control"),
    "noise_type": ((None, "clean", *NOISE_TYPES), "the noise condition of the N20EMv2 songs"),
    "sample_rate": ((16000,), "the models take 16 kHz audio; other rates are converted when "
                              "the data are prepared"),
}
#: Numeric options and the values that make sense: `{key: (lowest, highest, lowest included,
#: highest included)}` (None: unbounded). Out of range they fail late (an empty data loader, a
#: division by zero) or silently (a negative learning rate ascends the loss).
RANGES = {
    **{key: (1, None, True, True) for key in (
        "number_of_epochs", "batch_size", "eval_batch_size", "num_valid", "num_train_songs",
        "num_valid_songs", "num_layers", "nhead", "hidden_size", "d_model", "d_ffn",
        "distill_num_train_songs", "distill_num_valid_songs", "distill_dim",
        "distill_num_layers", "distill_steps", "distill_batch_size", "distill_crop_frames")},
    **{key: (0, None, True, True) for key in (
        "num_workers", "linear_prob_epochs", "ckpt_interval_minutes", "improvement_threshold",
        "distill_warmup_steps")},
    **{key: (0, None, False, True) for key in (
        "lr", "lr_ssl", "lr_encoder", "max_grad_norm", "onset_pos_weight", "offset_pos_weight",
        "distill_lr")},
    **{key: (0, 1, False, False) for key in ("onset_threshold", "offset_threshold")},
    **{key: (0, 1, False, True) for key in (
        "annealing_factor", "annealing_factor_ssl", "annealing_factor_head")},
    "dropout": (0, 1, True, False),
    "onset_delay": (0, MAX_ONSET_DELAY, True, True),
    "voice_bank_share": (0, 1, True, True),
    "distill_voice_bank_share": (0, 1, True, True),
    "distill_recordings_share": (0, 1, True, False),
    "pitch_gestures": (0, 1, True, True),
    "voiced_gaps": (0, 1, True, True),
    "corpus_workers": (1, None, True, True),
    "lookahead_frames": (0, 500, True, True),  # svt.models.pitch_network.MAX_LOOKAHEAD_FRAMES
    "pitch_stride": (1, 4, True, True),  # svt.models.pitch_network.MAX_PITCH_STRIDE
    # A label frame rate of 1e6 writes gigabytes of labels before anything fails; utterances of
    # more than an hour do not fit in memory.
    "label_frame_rate": (0, MAX_FRAME_RATE, False, True),
    "dur_threshold": (0, MAX_DUR_THRESHOLD, False, True),
}
#: SpeechBrain run options given on the command line (`--max_grad_norm nan` is parsed by
#: SpeechBrain, not read from the YAML) and their ranges, as RANGES. A NaN clipping norm turns
#: every gradient into NaN; a negative one (SpeechBrain's "disabled") flips the gradients' sign.
RUN_OPTION_RANGES = {
    "max_grad_norm": (0, None, False, True),
    "grad_accumulation_factor": (1, None, True, True),
    "nonfinite_patience": (0, None, True, True),
    "ckpt_interval_minutes": (0, None, True, True),
    "ckpt_interval_steps": (0, None, True, True),
}
#: Entries of mapping options and their ranges (as RANGES): the scoring tolerances (a negative
#: tolerance scores every note as missed, silently).
NESTED_RANGES = {
    "tolerances": {"onset_tolerance": (0, None, False, True),
                   "pitch_tolerance": (0, None, False, True),
                   "offset_ratio": (0, None, False, True),
                   "offset_min_tolerance": (0, None, True, True)},
}
#: Folders a run writes or reads: a model bundle (replaced whole when written) may not contain one.
RUN_FOLDERS = ("output_folder", "prepare_folder", "corpus_folder", "features_folder",
               "save_folder", "distill_corpus_folder")
#: Options naming a folder a bundle is written to (the folder is replaced whole).
BUNDLE_TARGETS = ("bundle_folder", "package_model_folder", "fcpe_bundle_folder")
#: The shortest generated song (`song_seconds`): shorter songs hold no notes.
MIN_SONG_SECONDS = 1.0
#: Folders the recipes read data from (null: not used).
INPUT_FOLDERS = ("data_folder", "mir_st500_folder", "tonas_folder", "ismir2014_folder",
                 "ssvd_folder", "distill_recordings")
#: Options naming an exported model (a bundle, or a recipe output folder holding `model/`).
BUNDLE_OPTIONS = ("model", "init_head_from", "audio_bundle", "video_bundle")
#: Options whose YAML default is a whole number but which are quantities that may be fractional
#: (`dur_threshold: 5` seconds, the video's `label_frame_rate: 50`): any number fits. Their
#: defaults stay integers because they name folders (`dur_5s`).
FRACTIONAL_OPTIONS = ("dur_threshold", "label_frame_rate", "snr_db")
#: Options whose YAML default is null (an automatic or absent value) and the kind a value given
#: for them must have; null stays accepted.
NULL_DEFAULT_KINDS = {"corpus_workers": "int", "lookahead_frames": "int"}
#: SpeechBrain's own command-line options (`--device`, `--precision`, ...), for suggestions.
RUN_OPTIONS = (*HELP_TEXTS, "jit_module_keys", "compile_module_keys")


def check_options(hparams_file, overrides: str, run_opts) -> str:
    """Check a recipe's YAML, overrides and run options before anything is built; returns the
    overrides to load the YAML with (the given string, or with bare True/False flags set to
    True). Raises OptionError."""
    hparams_file = str(hparams_file)
    tree, text = read_yaml_tree(hparams_file)
    given = parse_overrides(overrides)
    check_override_keys(tree, given, hparams_file)
    changed = check_override_types(tree, given, hparams_file)
    check_placeholders(tree, text, given, hparams_file)
    if changed:
        overrides = _dump(given)
    values = _resolved_values(hparams_file, overrides)
    origin = _origins(given, hparams_file)
    check_choices(values, origin)
    check_ranges(values, origin)
    check_inputs(values, origin)
    check_song_seconds(values, origin)
    check_room_reverb_gain(values, origin)
    check_bundle_targets(values, origin)
    check_device(run_opts.get("device"))
    check_run_option_ranges(run_opts)
    check_voice_bank(values, origin)
    check_distill_recordings(values, origin)
    check_distill_with_stride(values, origin)
    return overrides


# ------------------------------------------------------------------------------- reading

def read_yaml_tree(hparams_file) -> tuple[Mapping, str]:
    """`(tree, text)` of an hparams file: its top-level mapping with HyperPyYAML tags kept as
    tagged nodes (nothing is constructed), and its text."""
    path = Path(hparams_file)
    if not path.is_file():
        raise OptionError(f"hparams file {hparams_file} not found; pass the recipe's YAML (e.g. "
                          "hparams/train_audio_ssl.yaml) as the first argument")
    text = path.read_text()
    try:
        tree = ruamel.yaml.YAML().load(text)
    except ruamel.yaml.YAMLError as err:
        raise OptionError(f"{hparams_file} is not valid YAML: {err}") from None
    if not isinstance(tree, Mapping):
        raise OptionError(f"{hparams_file}: expected a mapping of options, got "
                          f"{type(tree).__name__}")
    return tree, text


def parse_overrides(overrides: str) -> dict:
    """The `--key value` overrides (SpeechBrain's YAML string) as a mapping, read as HyperPyYAML
    reads them (so the types seen here are the types the recipe gets)."""
    if not overrides or not overrides.strip():
        return {}
    try:
        given = ruamel.yaml.YAML().load(overrides)
    except ruamel.yaml.YAMLError as err:
        duplicate = re.search(r'found duplicate key "([^"]+)"', str(err))
        if duplicate:
            raise OptionError(f"--{duplicate.group(1)} is given twice on the command line; give "
                              "it once") from None
        detail = " ".join(str(err).split())
        raise OptionError(f"the command-line options are not valid YAML values ({detail}); "
                          "quote values holding ':', '{', '[' or '#'") from None
    if not isinstance(given, Mapping):
        raise OptionError(f"cannot read the command-line options {overrides!r}; write them as "
                          "--key value")
    return given


# ------------------------------------------------------------------------------- checks

def check_override_keys(tree: Mapping, given: Mapping, hparams_file) -> None:
    """Every override is a key of the YAML (HyperPyYAML's own error lists all ~100 keys)."""
    for key in given:
        if key in tree:
            continue
        known = [k for k in tree if not str(k).startswith("__")] + list(RUN_OPTIONS)
        close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join('--' + k for k in close)}?" if close
                else f"the options are the keys of {hparams_file}")
        raise OptionError(f"unknown option --{key}: {hparams_file} has no key {key!r}; {hint}")


def check_override_types(tree: Mapping, given: Mapping, hparams_file, prefix="") -> bool:
    """Each override has the type of the YAML's default value (nested mappings key by key).
    A bare flag (null) of a True/False option is set to True in `given`; returns whether any
    was."""
    changed = False
    for key, value in given.items():
        default = tree.get(key)
        name = f"{prefix}{key}"
        kind = _kind(default)
        if kind == "int" and name in FRACTIONAL_OPTIONS:
            kind = "float"
        if default is None and name in NULL_DEFAULT_KINDS:
            if value is None:
                continue
            kind = NULL_DEFAULT_KINDS[name]
        if kind is None or _tag(value) is not None:
            continue  # null or tagged default (anything goes), or HyperPyYAML written by the user
        if kind == "bool" and value is None:
            given[key] = True  # `--skip_invalid` alone, as for the prepare.py scripts
            changed = True
            continue
        if kind == "mapping" and isinstance(value, Mapping):
            changed |= check_override_types(default, value, hparams_file, prefix=f"{name}.")
            continue
        if not _fits(kind, value):
            raise OptionError(f"--{name}: expected {_KIND_NAMES[kind]}, like the default "
                              f"{_shown(default)} in {hparams_file}; got {_shown(value)}"
                              if default is not None else
                              f"--{name}: expected {_KIND_NAMES[kind]} or null (the default in "
                              f"{hparams_file}); got {_shown(value)}")
    return changed


def check_placeholders(tree: Mapping, text: str, given: Mapping, hparams_file) -> None:
    """Every `!PLACEHOLDER` key is given on the command line, with a value."""
    for key, default in tree.items():
        if _tag(default) != "!PLACEHOLDER":
            continue
        if key in given and given[key] is not None:
            continue
        comment = re.search(rf"^{re.escape(str(key))}:\s*!PLACEHOLDER[^#\n]*#\s*(.+)$", text,
                            re.MULTILINE)
        what = f" ({comment.group(1).strip()})" if comment else ""
        raise OptionError(f"--{key} is required{what}: {hparams_file} leaves it to the command "
                          f"line (--{key} VALUE)")


def check_choices(values: Mapping, origin) -> None:
    """Options with a fixed set of values hold one of them (`origin(key)` says where the value
    came from)."""
    for key, (accepted, meaning) in CHOICES.items():
        if key not in values:
            continue
        value = values[key]
        if _tag(value) is not None or isinstance(value, (Mapping, list)):
            continue  # computed by a tag: checked once loaded
        if value not in accepted:
            names = ", ".join("null" if a is None else str(a) for a in accepted)
            raise OptionError(f"{origin(key)}: {_shown(value)} is not one of {names} ({meaning})")


def check_ranges(values: Mapping, origin) -> None:
    """Numeric options (RANGES) hold values that make sense (`origin(key)` says where the value
    came from); null and computed (tagged) values are left to the recipe."""
    for key, bounds in RANGES.items():
        _check_range(origin(key), values.get(key), bounds)
    for key, entries in NESTED_RANGES.items():
        mapping = values.get(key)
        if not isinstance(mapping, Mapping):
            continue
        for entry, bounds in entries.items():
            _check_range(f"{origin(key)}.{entry}" if origin(key).startswith("--")
                         else f"{key}.{entry} in {origin(key).split(' in ', 1)[1]}",
                         mapping.get(entry), bounds)


def check_run_option_ranges(run_opts) -> None:
    """SpeechBrain's own numeric options given on the command line (RUN_OPTION_RANGES) are
    finite numbers in range (the YAML's values of the same keys are checked by `check_ranges`)."""
    given = getattr(run_opts, "overridden_args", None) or ()
    for key, bounds in RUN_OPTION_RANGES.items():
        if key in given:
            _check_range(f"--{key}", run_opts[key], bounds)


def _check_range(name: str, value, bounds) -> None:
    low, high, low_in, high_in = bounds
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    below = low is not None and (value < low if low_in else value <= low)
    above = high is not None and (value > high if high_in else value >= high)
    # NaN fits no range; infinity is no meaningful value of any option (an infinite clipping
    # norm or learning rate, infinitely many epochs).
    if below or above or value != value or value in (float("inf"), float("-inf")):
        if high is None:
            wanted = f"{'at least' if low_in else 'greater than'} {low}"
            if value in (float("inf"), float("-inf")):
                wanted += " (and finite)"
        else:
            wanted = (f"in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}")
        raise OptionError(f"{name}: {_shown(value)} is out of range; it must be {wanted}")


def _number_pair(value) -> bool:
    """Whether an option's value is a list of two numbers (not NaN), as a `[low, high]` range."""
    return isinstance(value, list) and len(value) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in value)


def check_song_seconds(values: Mapping, origin) -> None:
    """`song_seconds` (SingingTranscriber's generated song lengths) is `[min, max]` with
    MIN_SONG_SECONDS <= min <= max (numpy fails on min > max; shorter songs hold no notes)."""
    if "song_seconds" not in values or _tag(values["song_seconds"]) is not None:
        return
    value = values["song_seconds"]
    if (not _number_pair(value) or not MIN_SONG_SECONDS <= value[0] <= value[1]
            or value[1] == float("inf")):
        raise OptionError(f"{origin('song_seconds')}: {_shown(value)} is not a song length range; "
                          f"give two numbers [min, max] of seconds with {MIN_SONG_SECONDS:g} <= "
                          "min <= max (finite), e.g. [12.0, 30.0]")


#: The loudest room reverberation a generated corpus may ask for, relative to the dry voice
#: (`room_reverb_gain`): 10 dB above the direct sound.
MAX_ROOM_REVERB_GAIN = 3.2


def check_room_reverb_gain(values: Mapping, origin) -> None:
    """`room_reverb_gain` (SingingTranscriber's rooms) is `[low, high]` with 0 <= low <= high <=
    MAX_ROOM_REVERB_GAIN (numpy draws from a reversed range without a word)."""
    if "room_reverb_gain" not in values or _tag(values["room_reverb_gain"]) is not None:
        return
    value = values["room_reverb_gain"]
    if not _number_pair(value) or not 0 <= value[0] <= value[1] <= MAX_ROOM_REVERB_GAIN:
        raise OptionError(f"{origin('room_reverb_gain')}: {_shown(value)} is not a range of "
                          "reverberation levels; give two numbers [low, high] with 0 <= low <= "
                          f"high <= {MAX_ROOM_REVERB_GAIN:g} (the reverberation's amplitude "
                          "relative to the dry voice), e.g. [0.05, 0.6]")


def check_voice_bank(values: Mapping, origin) -> None:
    """With `voice_bank_share` > 0 (SingingTranscriber), the recorded voices and the WORLD
    vocoder must be there: found missing after the model is built, or half-way through the
    corpus, the run would stop late."""
    for key in ("voice_bank_share", "distill_voice_bank_share"):
        share = values.get(key)
        if not isinstance(share, (int, float)) or share <= 0:
            continue
        if key.startswith("distill") and values.get("distill_pitch_network") is False:
            continue  # no distillation corpus is generated
        from svt.synthetic.festival_voices import check_festival, split_speakers
        from svt.synthetic.recorded_voices import find_voice_bank, load_world

        speakers = values.get("voice_bank_speakers")
        if speakers is not None and not (isinstance(speakers, (list, tuple)) and speakers
                                         and all(isinstance(s, str) for s in speakers)):
            raise OptionError(f"{origin('voice_bank_speakers')}: {_shown(speakers)} is not a "
                              "list of speaker names; give e.g. [female] or [female, kal, lp]")
        others, festival = split_speakers(speakers or ())
        try:
            if speakers is None or others:  # gcin-voice's speakers
                find_voice_bank(values.get("voice_bank_folder"),
                                None if speakers is None else others)
            if festival:  # their syllables are rendered when the corpus is made
                check_festival(festival)
            load_world()
        except (OSError, ImportError, ValueError) as err:
            raise OptionError(f"{origin(key)}: {share:g} needs the recorded voices: "
                              f"{err} (or set --{key} 0)") from None


def check_distill_recordings(values: Mapping, origin) -> None:
    """`distill_recordings` (SingingTranscriber, with distillation on) holds audio files: found
    empty after the model is trained, the run would stop hours late."""
    folder = values.get("distill_recordings")
    if not isinstance(folder, str) or not folder or values.get("distill_pitch_network") is not True:
        return
    from svt.audio import AudioError
    from svt.training.pitch_distillation import DistillationDataError, recording_files

    try:
        recording_files(folder)
    except (DistillationDataError, AudioError) as err:  # AudioError: a file it cannot read
        raise OptionError(f"{origin('distill_recordings')}: {err}") from None


def check_distill_with_stride(values: Mapping, origin) -> None:
    """Distillation trains the compact network on every mel frame: with `pitch_stride` above 1 it
    would then read every s-th frame, a sequence it never saw (each convolution spanning s times
    the time), so the two are not combined."""
    stride = values.get("pitch_stride", 1)
    if values.get("distill_pitch_network") is True and stride != 1:
        raise OptionError(f"{origin('pitch_stride')}: {stride} reads one mel frame in {stride}, "
                          "but a distilled pitch network (--distill_pitch_network True) is "
                          "trained on every frame; use --pitch_stride 1 with distillation")


def check_bundle_targets(values: Mapping, origin) -> None:
    """The folders a model bundle is written to (`bundle_folder`, `package_model_folder`) are new,
    empty or svt bundles, and hold none of the run's other folders: writing a bundle replaces its
    folder whole, so the user's files (or the run's own output, or the dataset) would be lost
    after training."""
    def folder(key):
        value = values.get(key)
        return value if isinstance(value, (str, Path)) and str(value) else None

    keep = [folder(key) for key in (*RUN_FOLDERS, *INPUT_FOLDERS) if folder(key)]
    for key in BUNDLE_TARGETS:
        target = folder(key)
        if target is None:
            continue
        others = keep + [folder(k) for k in BUNDLE_TARGETS if k != key and folder(k)]
        try:
            check_bundle_target(target, keep_clear=others)
        except BundleError as err:
            raise OptionError(f"{origin(key)}: {err}") from None


def check_inputs(values: Mapping, origin) -> None:
    """Input folders and model bundles exist (before any preparation, so that a misspelt
    --tonas_folder stops the run before MIR-ST500 is prepared rather than after)."""
    for key in INPUT_FOLDERS:
        folder = values.get(key)
        if not isinstance(folder, str) or not folder:
            continue
        if not Path(folder).is_dir():
            state = "is not a folder" if Path(folder).exists() else "does not exist"
            wanted = ("a folder of your recordings" if key == "distill_recordings"
                      else "the dataset's root folder")
            raise OptionError(f"{origin(key)}: {folder} {state}; pass {wanted}")
    for key in BUNDLE_OPTIONS:
        bundle = values.get(key)
        if not isinstance(bundle, str) or not bundle:
            continue
        try:
            find_bundle(bundle)
        except BundleError as err:
            raise OptionError(f"{origin(key)}: {err}") from None


def check_device(device) -> None:
    """`--device` names a device this machine has (SpeechBrain fails on it much later); the same
    rule as svt-transcribe's (`resolve_device`)."""
    if device is None:
        return
    try:
        resolve_device(device)
    except ValueError as err:
        raise OptionError(str(err)) from None


# ------------------------------------------------------------------------------- helpers

_KIND_NAMES = {"bool": "True or False", "int": "a whole number", "float": "a number",
               "str": "a text value", "list": "a list such as [1, 2]",
               "mapping": "a mapping such as {key: value}"}


def _tag(node):
    """The HyperPyYAML tag of a round-trip node (`!ref`, `!new:...`), or None."""
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None) if tag is not None else None


def _kind(default):
    """The type an override of `default` must have, or None when any goes."""
    if default is None or _tag(default) is not None:
        return None
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list):
        return "list"
    if isinstance(default, Mapping):
        return "mapping"
    return None


def _fits(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # True is an int to Python, never a count or a rate here
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    if kind == "str":
        return isinstance(value, (str, int, float))  # names and paths may look like numbers
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, Mapping)


def _shown(value) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        return repr(dict(value))
    if isinstance(value, list):
        return repr(list(value))
    return str(value)


def _origins(given: Mapping, hparams_file):
    """`origin(key)`: how a message names an option: `--key` when given on the command line,
    else `key in <yaml>`."""
    return lambda key: f"--{key}" if key in given else f"{key} in {hparams_file}"


def _dump(given: Mapping) -> str:
    stream = io.StringIO()
    ruamel.yaml.YAML().dump(given, stream)
    return stream.getvalue()


def _resolved_values(hparams_file, overrides: str) -> Mapping:
    """The YAML's top-level values with the overrides applied and `!ref`s resolved, objects still
    unbuilt (tagged nodes)."""
    with open(hparams_file) as stream:
        resolved = resolve_references(stream, overrides)
    return ruamel.yaml.YAML().load(resolved)
