"""Reading and writing note files in the formats singing-transcription datasets and tools use.

Every reader returns a float64 `(N, 3)` array `[onset_s, offset_s, midi]` sorted by onset, and
every malformed input raises `NoteFileError` naming the file (and line, where there is one). A file
that reads but looks wrong (pitches in Hz where MIDI numbers belong or the reverse, times in
milliseconds, a text format that could not be told apart for sure) issues a `NoteFileWarning`
naming the file and what to do: such files used to be scored silently, to near-zero scores.

Formats (`fmt` names), chosen by extension and content when not given:

* ``json``: a note list `[[onset, offset, midi], ...]` (MIR-ST500 per-song files, svt outputs).
* ``json-dict``: `{song: note_list}` (MIR-ST500 `Annotations.json`) or `{song: {"midi": note_list,
  "split": ...}}` (N20EMv2 `annotations.json`); read with `read_note_collection`.
* ``mirex``: mir_eval's text format, `onset offset frequency_hz` per line, whitespace or comma
  separated, `#` comments (`.txt`, `.lab` whose third column is in Hz). Told apart from the MIDI
  text formats by singing ranges (see `_pitch_column_unit`); a column that fits both readings (a
  bass line in Hz, 82..200) is read the more plausible way with a warning.
* ``ismir2014``: ISMIR2014 ground truth, `onset duration midi` per line (`.txt`/`.notes` whose third
  column is a MIDI number).
* ``ssvd``: SSVD (Sight-singing Vocal Dataset) `.txt`, `onset offset fractional_midi` per line
  (tab separated, CRLF line ends, no header); told apart from ISMIR2014 by its second column, which
  exceeds the first on every row (an offset, not a duration), whether or not the notes overlap or
  the rows are sorted.
* ``csv``: CSV with a header naming onset, offset and pitch (MIDI) columns.
* ``tonas``: TONAS `.notes.Corrected`: first line the tuning deviation in cents from 440 Hz, then
  `onset duration fractional_midi energy` rows. The MIDI values already are the sung pitches; the
  tuning line is parsed (validated) but not applied, as in the published evaluations.
* ``midi``: standard MIDI file with one melodic track and channel (drum channel ignored); where
  several tracks or channels hold notes, `track=` / `channel=` (svt-score `--midi-track` /
  `--midi-channel`) choose one.

Text files are read as UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" writes one);
a JSON object naming a song twice, and note times beyond `MAX_NOTE_TIME_S`, are errors.
"""
from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
from mir_eval.util import hz_to_midi, midi_to_hz

from svt.errors import SvtUserError
from svt.fileio import atomic_path, no_duplicate_keys, write_text_atomic
from svt.notes.labels import validate_notes
from svt.notes.scoring import MAX_NOTE_TIME_S

#: Note text files are decoded with this: UTF-8, a leading byte-order mark dropped.
TEXT_ENCODING = "utf-8-sig"

NOTE_FILE_SUFFIXES = (".json", ".csv", ".mid", ".midi", ".txt", ".lab", ".notes", ".corrected")
#: When one folder holds several files of a song (svt-transcribe writes .json, .csv and .mid),
#: the first of these is read.
SUFFIX_PREFERENCE = (".json", ".csv", ".mid", ".midi", ".corrected", ".notes", ".txt", ".lab")
_ONSET_NAMES = ("onset", "onset_s", "onset_time", "start", "start_s", "begin")
_OFFSET_NAMES = ("offset", "offset_s", "offset_time", "end", "end_s", "stop")
_PITCH_NAMES = ("pitch", "midi", "midi_pitch", "note", "pitch_midi")


class NoteFileError(SvtUserError, ValueError):
    """A note file that cannot be read; the message names the file and what is wrong."""


class NoteFileWarning(UserWarning):
    """A note file that was read but looks wrong (units, an ambiguous format guess); the message
    names the file, what was seen and what to do. `svt-score` prints these on stderr."""


#: Where sung notes lie (C2..C7, and roughly the same span in Hz): used to judge which unit a pitch
#: column is in.
SINGING_MIDI = (36.0, 96.0)
SINGING_HZ = (60.0, 1600.0)
#: A MIDI pitch column whose median is above this (E7, above any sung melody) holds Hz.
MIDI_MEDIAN_MAX = 100.0
#: A Hz pitch column whose median is below this (a bass's lowest notes, E2 = 82 Hz) holds MIDI
#: numbers; MIDI columns of sung melodies have medians of about 40..80.
HZ_MEDIAN_MIN = 80.0
#: A median note longer than this (seconds) means the times are in milliseconds.
MAX_MEDIAN_DURATION_S = 20.0
#: Whole-number times reaching this (seconds) mean milliseconds as well.
MS_INTEGER_ONSET_MIN = 1000.0
_TO_MIDI = "convert the pitches to MIDI note numbers (midi = 69 + 12 * log2(Hz / 440))"
_TEXT_TO_MIDI = ("if the file is mir_eval's `onset offset Hz`, pass --format mirex "
                 "(fmt=\"mirex\"); otherwise " + _TO_MIDI)
_FORMAT_CHOICE = ("pass --format mirex (onset offset Hz), --format ssvd (onset offset MIDI) or "
                  "--format ismir2014 (onset duration MIDI) (fmt= in read_notes) to say which")


def _warn(message: str) -> None:
    warnings.warn(message, NoteFileWarning, stacklevel=3)


def _check_units(source, notes, pitch_unit, midi_remedy=_TO_MIDI) -> None:
    """Warn when read notes look like they carry the wrong units (see NoteFileWarning).

    `pitch_unit` is the unit the file's pitch column was read in ("midi" or "hz"; the notes are
    already converted to MIDI), or None to skip the pitch check.
    """
    if len(notes) == 0:
        return
    pitch = float(np.median(notes[:, 2]))
    if pitch_unit == "midi" and pitch > MIDI_MEDIAN_MAX:
        above = float(np.mean(notes[:, 2] > 127))
        _warn(f"{source}: the pitch column is read as MIDI note numbers, but its median is "
              f"{pitch:.4g} ({above:.0%} of the values above 127, the highest MIDI note), far "
              f"above any singing voice (MIDI {SINGING_MIDI[0]:.0f}..{SINGING_MIDI[1]:.0f}); "
              f"the values look like frequencies in Hz: {midi_remedy}")
    elif pitch_unit == "hz" and pitch < hz_to_midi(HZ_MEDIAN_MIN):
        _warn(f"{source}: the third column is read as frequencies in Hz (mir_eval format), but its "
              f"median is {float(midi_to_hz(pitch)):.4g} Hz, lower than any sung melody is "
              f"centred (even a bass line's median is above {HZ_MEDIAN_MIN:.0f} Hz, near its "
              "lowest notes); the values look like MIDI note numbers: pass --format ssvd (onset "
              "offset MIDI) or --format ismir2014 (onset duration MIDI), or convert the column to "
              "Hz (Hz = 440 * 2 ** ((midi - 69) / 12))")
    durations = notes[:, 1] - notes[:, 0]
    median_duration = float(np.median(durations))
    last_onset = float(notes[:, 0].max())
    # Whole-number times in the thousands: short notes written in integer milliseconds.
    whole = (last_onset >= MS_INTEGER_ONSET_MIN
             and bool(np.all(notes[:, :2] == np.round(notes[:, :2]))))
    if median_duration > MAX_MEDIAN_DURATION_S or whole:
        seen = (f"the median note lasts {median_duration:.4g} s"
                if median_duration > MAX_MEDIAN_DURATION_S else
                f"all times are whole numbers and the onsets reach {last_onset:.0f} s")
        _warn(f"{source}: the note times look like milliseconds ({seen}); svt reads seconds: "
              "divide the onset, offset and duration columns by 1000")


def song_id(path) -> str:
    """Name of the song a note file belongs to: the file name without its note-file suffixes
    (`a.notes.Corrected` -> `a`, `b.GroundTruth.txt` -> `b`, `c.json` -> `c`)."""
    name = Path(path).name
    lowered = name.lower()
    for suffix in (".notes.corrected", ".groundtruth.txt", ".notes.txt", ".notes"):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _finish(path, notes, line_of_row=None, pitch_unit="midi", midi_remedy=_TO_MIDI,
            check_units=True):
    """Validate, sort by onset and, once the notes are known to be well formed, check their units
    (`_check_units`; skipped for MIDI files, whose pitches and seconds cannot be in other units)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    row_names = None if line_of_row is None else [f"line {line}:" for line in line_of_row]
    try:
        notes = validate_notes(notes, str(path), row_names)
    except ValueError as err:
        raise NoteFileError(str(err)) from None
    _check_time_range(path, notes, row_names, "time")
    if check_units:
        _check_units(path, notes, pitch_unit, midi_remedy)
    return notes[np.argsort(notes[:, 0], kind="stable")]


def _check_time_range(path, rows, row_names, what) -> None:
    """NoteFileError for the first row whose time columns (the first two) hold a value beyond
    MAX_NOTE_TIME_S: such values (1e308 and the like) are no recording's times, and scoring them
    overflows."""
    rows = np.asarray(rows, dtype=np.float64)
    huge = np.any(np.abs(rows[:, :2]) > MAX_NOTE_TIME_S, axis=1)
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        where = row_names[row] if row_names is not None else f"note row {row}:"
        raise NoteFileError(
            f"{path}: {where} {rows[row].tolist()} has a {what} beyond "
            f"{MAX_NOTE_TIME_S:g} s (about {MAX_NOTE_TIME_S / 86400:.0f} days), which no "
            "recording has; note times must be seconds from the start of the audio: fix or "
            "remove the row")


def _numeric_rows(path, min_columns, skip_first_line=False):
    """Rows of numbers from a whitespace/comma separated text file, with their line numbers."""
    rows, lines = [], []
    text = Path(path).read_text(encoding=TEXT_ENCODING)
    for number, raw in enumerate(text.splitlines(), start=1):
        if skip_first_line and number == 1:
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in line.replace(",", " ").replace(";", " ").split() if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise NoteFileError(f"{path}: line {number}: expected numbers, got {raw.strip()!r}") \
                from None
        if len(values) < min_columns:
            raise NoteFileError(f"{path}: line {number}: expected at least {min_columns} columns, "
                                f"got {len(values)}: {raw.strip()!r}")
        rows.append(values)
        lines.append(number)
    return rows, lines


def read_mirex(path):
    """mir_eval text format: `onset offset frequency_hz`."""
    rows, lines = _numeric_rows(path, 3)
    array = np.asarray([r[:3] for r in rows], dtype=np.float64).reshape(-1, 3)
    bad = array[:, 2] <= 0
    if bad.any():
        line = lines[int(np.flatnonzero(bad)[0])]
        raise NoteFileError(f"{path}: line {line}: frequency must be positive (Hz)")
    array[:, 2] = hz_to_midi(array[:, 2])
    return _finish(path, array, lines, pitch_unit="hz")


def read_onset_duration_midi(path, skip_first_line=False, min_columns=3,
                             midi_remedy=_TEXT_TO_MIDI):
    rows, lines = _numeric_rows(path, min_columns, skip_first_line)
    array = np.asarray([r[:3] for r in rows], dtype=np.float64).reshape(-1, 3)
    bad = array[:, 1] <= 0
    if bad.any():
        line = lines[int(np.flatnonzero(bad)[0])]
        raise NoteFileError(f"{path}: line {line}: duration must be positive")
    # Before adding: onset + duration of values near 1e308 overflows to infinity.
    _check_time_range(path, array, [f"line {line}:" for line in lines],
                      "time or duration")
    array[:, 1] += array[:, 0]
    return _finish(path, array, lines, midi_remedy=midi_remedy)


def read_ismir2014(path):
    """ISMIR2014 ground truth: `onset duration midi` per line."""
    return read_onset_duration_midi(path)


def read_onset_offset_midi(path):
    """SSVD note files: `onset offset midi` per line, the pitch a fractional MIDI number."""
    rows, lines = _numeric_rows(path, 3)
    array = np.asarray([r[:3] for r in rows], dtype=np.float64).reshape(-1, 3)
    return _finish(path, array, lines, midi_remedy=_TEXT_TO_MIDI)


def read_tonas(path):
    """TONAS `.notes.Corrected`; returns the notes (see the module docstring on tuning)."""
    first = Path(path).read_text(encoding=TEXT_ENCODING).splitlines()[:1]
    fields = first[0].replace(",", " ").split() if first else []
    try:
        if len(fields) != 1:  # a note row here would otherwise be lost as the "tuning"
            raise ValueError
        float(fields[0])
    except ValueError:
        raise NoteFileError(f"{path}: line 1: expected the tuning deviation in cents (one number "
                            f"alone on the line, as TONAS files begin), got {first[0]!r}; add the "
                            "tuning line (0 if unknown)" if first
                            else f"{path}: the file is empty") from None
    return read_onset_duration_midi(path, skip_first_line=True, min_columns=3,
                                    midi_remedy=_TO_MIDI)


def read_csv_notes(path):
    """CSV with a header naming onset, offset and pitch (MIDI) columns."""
    with open(path, newline="", encoding=TEXT_ENCODING) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise NoteFileError(f"{path}: the file is empty")
        names = [h.strip().lower() for h in header]

        def column(options, what):
            for option in options:
                if option in names:
                    return names.index(option)
            raise NoteFileError(f"{path}: line 1: no {what} column in the header {header}; "
                                f"expected one of {list(options)}")

        cols = (column(_ONSET_NAMES, "onset"), column(_OFFSET_NAMES, "offset"),
                column(_PITCH_NAMES, "pitch (MIDI)"))
        rows, lines = [], []
        for number, row in enumerate(reader, start=2):
            if not any(field.strip() for field in row):
                continue
            try:
                rows.append([float(row[c]) for c in cols])
            except (ValueError, IndexError):
                raise NoteFileError(f"{path}: line {number}: expected numbers in columns "
                                    f"{[header[c] for c in cols]}, got {row}") from None
            lines.append(number)
    return _finish(path, rows, lines)


def _json_note_list(path, value, where):
    if not isinstance(value, list):
        raise NoteFileError(f"{path}: {where}: expected a list of [onset, offset, midi] notes, got "
                            f"{type(value).__name__}")
    for i, note in enumerate(value):
        if not (isinstance(note, (list, tuple)) and len(note) >= 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in note[:3])):
            raise NoteFileError(f"{path}: {where}: note {i} is {_short(note)}, expected "
                                "[onset_s, offset_s, midi]")
        huge = next((x for x in note[:3] if isinstance(x, int) and abs(x) > 1e300), None)
        if huge is not None:  # would not even convert to a float
            raise NoteFileError(f"{path}: {where}: note {i} holds a {len(str(abs(huge)))}-digit "
                                "number, which no note time or pitch is: fix the file")
    return _finish(f"{path}: {where}", [n[:3] for n in value])


def _short(value, limit=120) -> str:
    """`repr(value)` cut to `limit` characters (a note may be a huge nested structure)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."


def _load_json(path):
    try:
        return json.loads(Path(path).read_text(encoding=TEXT_ENCODING),
                          object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise NoteFileError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    except RecursionError:
        raise NoteFileError(f"{path}: the JSON is nested too deeply to be a note file (notes are "
                            "a list of [onset, offset, midi] lists, or an object of such lists "
                            "per song)") from None
    except ValueError as err:
        if "digits" in str(err):  # Python's limit on the digits of an integer
            raise NoteFileError(f"{path}: a number in the JSON has thousands of digits; no note "
                                "time or pitch does: fix the file") from None
        # no_duplicate_keys: json would keep the last entry silently
        raise NoteFileError(f"{path}: {err} in one JSON object, and only one of the entries "
                            "would be read; remove or rename the repeated entry") from None


def read_json_notes(path):
    value = _load_json(path)
    if isinstance(value, dict):
        raise NoteFileError(f"{path}: holds several songs ({len(value)} keys); read it with "
                            "read_note_collection (svt-score accepts it as a dict file)")
    return _json_note_list(path, value, "notes")


def read_note_collection(path, split=None):
    """`{song: notes}` from a MIR-ST500 `Annotations.json` or N20EMv2 `annotations.json`.

    With `split`, only N20EMv2 entries whose `"split"` equals it are returned.
    """
    value = _load_json(path)
    if not isinstance(value, dict):
        raise NoteFileError(f"{path}: expected a JSON object {{song: notes}}, got a "
                            f"{type(value).__name__}")
    songs, splits = {}, set()
    for key, entry in value.items():
        if isinstance(entry, dict):
            if "midi" not in entry:
                raise NoteFileError(f"{path}: entry {key!r} has no \"midi\" note list "
                                    f"(keys: {sorted(entry)})")
            if entry.get("split") is not None:
                splits.add(str(entry["split"]))
            if split is not None and entry.get("split") != split:
                continue
            entry = entry["midi"]
        elif split is not None:
            raise NoteFileError(f"{path}: entries carry no \"split\" field, so split={split!r} "
                                "cannot be applied")
        songs[str(key)] = _json_note_list(path, entry, f"song {key!r}")
    if split is not None and not songs and value:
        if not splits:
            raise NoteFileError(f"{path}: no entry carries a \"split\" field, so split={split!r} "
                                "cannot be applied; leave out the split (--split)")
        raise NoteFileError(f"no entry of {path} has split {split!r}; its splits: "
                            f"{', '.join(sorted(splits))}")
    return songs


def _midi_failure_reason(path, err) -> str:
    """Why mido could not read `path`, in words (several of its errors carry no message)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as os_err:
        return f"cannot open it: {os_err}"
    if not head:
        return "the file is empty"
    if head != b"MThd":
        return (f"it does not start with the MIDI header 'MThd' (first bytes {head!r}); it is not "
                "a standard MIDI file")
    if isinstance(err, EOFError):
        return "the file ends in the middle of a track or header: it is truncated or damaged"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def read_midi(path, track=None, channel=None):
    """Notes of a standard MIDI file's melodic part, times in seconds through the tempo map; a
    pitch bend sounding at a note's start shifts its pitch (+-2 semitones full scale, as written
    by `write_notes_midi`).

    The part must be one track and one channel (drum channel 9, counting from 0, is ignored): where
    notes lie on several tracks or channels (a melody on one, chords on another) it is an error
    naming them unless `track` (index in the file, from 0) and/or `channel` (0..15) choose.
    A note still sounding at the end of its track (no note-off) is closed there, with a
    NoteFileWarning naming it.
    """
    import mido

    try:
        midi = mido.MidiFile(path)
    except Exception as err:  # mido raises several types for corrupt files
        raise NoteFileError(f"{path}: not a readable MIDI file "
                            f"({_midi_failure_reason(path, err)})") from None
    if midi.type == 2:
        raise NoteFileError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    if not midi.ticks_per_beat or midi.ticks_per_beat <= 0:
        raise NoteFileError(f"{path}: the MIDI header gives {midi.ticks_per_beat} ticks per beat, "
                            "so no event has a time; the file is damaged: export it again")
    # Tempo map from all tracks (type 1 files keep it in track 0).
    tempo_changes = sorted(
        (tick, msg.tempo)
        for t in midi.tracks for tick, msg in _absolute(t) if msg.type == "set_tempo")
    ticks_at, seconds_at, tempos = [0], [0.0], [500000]
    for tick, tempo in tempo_changes:
        seconds_at.append(seconds_at[-1] + mido.tick2second(tick - ticks_at[-1],
                                                            midi.ticks_per_beat, tempos[-1]))
        ticks_at.append(tick)
        tempos.append(tempo)

    def to_seconds(tick):
        i = int(np.searchsorted(ticks_at, tick, side="right")) - 1
        return seconds_at[i] + mido.tick2second(tick - ticks_at[i], midi.ticks_per_beat,
                                                tempos[i])

    parts = {}  # (track, channel) -> notes
    unterminated = {}  # (track, channel) -> [(note, start tick, end tick)]
    for index, t in enumerate(midi.tracks):
        sounding, bends, tick = {}, {}, 0
        for tick, msg in _absolute(t):
            if msg.type == "pitchwheel":
                bends[msg.channel] = msg.pitch / 8192 * MIDI_BEND_RANGE
            if msg.type not in ("note_on", "note_off") or msg.channel == 9:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(key, []).append((tick, bends.get(msg.channel, 0.0)))
            elif sounding.get(key):
                start, bend = sounding[key].pop(0)
                if tick > start:
                    parts.setdefault((index, msg.channel), []).append(
                        [to_seconds(start), to_seconds(tick), msg.note + bend])
        for (chan, note), starts in sounding.items():  # no note-off: close at the track's end
            for start, bend in starts:
                unterminated.setdefault((index, chan), []).append((note, start, tick))
                if tick > start:
                    parts.setdefault((index, chan), []).append(
                        [to_seconds(start), to_seconds(tick), note + bend])
    chosen = {k: v for k, v in parts.items()
              if (track is None or k[0] == track) and (channel is None or k[1] == channel)}
    if not chosen and (track is not None or channel is not None):
        asked = " and ".join(f"{name} {value}" for name, value in (("track", track),
                                                                   ("channel", channel))
                             if value is not None)
        raise NoteFileError(f"{path}: no notes on {asked}; notes lie on "
                            f"{_midi_parts(parts) or 'no track (the file holds no notes)'}")
    tracks = sorted({k[0] for k in chosen})
    channels = sorted({k[1] for k in chosen})
    if len(tracks) > 1:
        raise NoteFileError(f"{path}: {len(tracks)} tracks hold notes ({_midi_parts(chosen)}); "
                            "choose the melody's with --midi-track N (svt-score) or track=N "
                            "(read_midi), tracks counted from 0")
    if len(channels) > 1:
        raise NoteFileError(f"{path}: track {tracks[0]} holds notes on {len(channels)} channels "
                            f"({', '.join(map(str, channels))}, counted from 0), e.g. a melody "
                            "and its accompaniment; choose the melody's with --midi-channel N "
                            "(svt-score) or channel=N (read_midi)")
    notes = next(iter(chosen.values()), [])
    for key in chosen:
        for note, start, end in unterminated.get(key, []):
            fate = (f"closed at the end of the track ({to_seconds(end):.3f} s)" if end > start
                    else "dropped, as the track ends there")
            _warn(f"{path}: MIDI note {note} (track {key[0]}, channel {key[1]}) starting at "
                  f"{to_seconds(start):.3f} s has no note-off; {fate}. Check that the file was "
                  "written completely")
    return _finish(path, notes, check_units=False)


def _midi_parts(parts) -> str:
    """`track 1 (channel 0), track 2 (channels 0, 1)` for the (track, channel) keys of `parts`."""
    by_track = {}
    for t, c in sorted(parts):
        by_track.setdefault(t, []).append(c)
    return ", ".join(f"track {t} (channel{'s' if len(cs) > 1 else ''} {', '.join(map(str, cs))})"
                     for t, cs in by_track.items())


def _absolute(track):
    tick = 0
    for msg in track:
        tick += msg.time
        yield tick, msg


def _pitch_column_unit(path, column) -> str:
    """"hz" or "midi": the unit of a text file's third column, judged by singing ranges.

    A median above 127.5 cannot be MIDI note numbers and one below HZ_MEDIAN_MIN is no sung melody
    in Hz: those files are clear. In between, both readings are possible: high notes in MIDI or a
    low (bass) line in Hz, whose median is ~120 Hz (and which a median-only rule took for MIDI).
    There the reading that puts more of the values into its singing range wins (a bass line in Hz
    has values above MIDI 96 and none below 60; a MIDI melody the reverse), ties going to the
    reading whose median is nearer the middle of the singing range, and a warning says it was a
    guess.
    """
    median = float(np.median(column))
    midi_possible, hz_possible = median <= 127.5, median >= HZ_MEDIAN_MIN
    if not (midi_possible and hz_possible):
        return "midi" if midi_possible else "hz"
    as_midi = float(np.mean((column >= SINGING_MIDI[0]) & (column <= SINGING_MIDI[1])))
    as_hz = float(np.mean((column >= SINGING_HZ[0]) & (column <= SINGING_HZ[1])))
    if as_hz != as_midi:
        unit = "hz" if as_hz > as_midi else "midi"
        why = (f"{max(as_hz, as_midi):.0%} of its values lie in the singing range as "
               f"{'Hz' if unit == 'hz' else 'MIDI'} against {min(as_hz, as_midi):.0%} as "
               f"{'MIDI' if unit == 'hz' else 'Hz'}")
    else:
        middle = sum(SINGING_MIDI) / 2
        unit = "hz" if abs(hz_to_midi(median) - middle) < abs(median - middle) else "midi"
        why = (f"its median is nearer the middle of the singing range read as "
               f"{'Hz' if unit == 'hz' else 'MIDI'}")
    _warn(f"{path}: cannot tell for sure whether the third column is in Hz or in MIDI note "
          f"numbers: its median {median:.4g} fits both (a low voice in Hz, or high notes in MIDI); "
          f"read it as {'Hz (mir_eval format)' if unit == 'hz' else 'MIDI'} because {why}. "
          f"If that is wrong, {_FORMAT_CHOICE}")
    return unit


def _text_format(path) -> str:
    """mirex, ismir2014 or ssvd, from the columns of a numeric text file."""
    rows, _ = _numeric_rows(path, 3)
    if not rows:
        return "mirex"
    array = np.asarray([r[:3] for r in rows], dtype=np.float64)
    if _pitch_column_unit(path, array[:, 2]) == "hz":
        return "mirex"
    # A second column of offsets exceeds its onset on every row, whether the notes overlap (a
    # chord, an echo) or the rows are out of order; a duration column (ISMIR2014) falls below the
    # onset time from the first notes on.
    if not np.all(array[:, 1] > array[:, 0]):
        return "ismir2014"
    # Read as durations, an SSVD file's notes overlap the next ones (an onset plus the next
    # note's onset time reaches past it); where they do not, as in a file of one or two early
    # notes, the column may be durations after all.
    array = array[np.argsort(array[:, 0], kind="stable")]
    onsets = array[:, 0]
    if np.all(onsets[:-1] + array[:-1, 1] <= onsets[1:]):
        _warn(f"{path}: cannot tell for sure whether the second column holds offsets (SSVD: onset "
              "offset MIDI) or durations (ISMIR2014: onset duration MIDI): both readings give "
              f"notes that follow one another; read it as offsets. If that is wrong, "
              f"{_FORMAT_CHOICE}")
    return "ssvd"


def detect_format(path) -> str:
    """Format name of a note file from its name and, for plain text, its content."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".notes.corrected"):
        return "tonas"
    suffix = path.suffix.lower()
    if suffix in (".mid", ".midi"):
        return "midi"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json-dict" if isinstance(_load_json(path), dict) else "json"
    if suffix in (".txt", ".lab", ".notes", ".tsv") or not suffix:
        return _text_format(path)
    raise NoteFileError(f"{path}: unknown note-file type {suffix!r}; use .json, .csv, .mid, "
                        ".txt (mir_eval or ISMIR2014) or .notes.Corrected (TONAS)")


READERS = {
    "json": read_json_notes,
    "mirex": read_mirex,
    "ismir2014": read_ismir2014,
    "ssvd": read_onset_offset_midi,
    "csv": read_csv_notes,
    "tonas": read_tonas,
    "midi": read_midi,
}


def read_notes(path, fmt=None, midi_track=None, midi_channel=None):
    """Read one song's notes; `fmt` is one of READERS' names, or detected when None.

    `midi_track` / `midi_channel` choose the part of a MIDI file (`read_midi`'s track / channel);
    other formats ignore them.
    """
    path = Path(path)
    if not path.is_file():
        raise NoteFileError(f"{path}: no such note file")
    fmt = fmt or detect_format(path)
    if fmt == "json-dict":
        return read_json_notes(path)  # raises the "several songs" error
    if fmt not in READERS:
        raise NoteFileError(f"{path}: unknown format {fmt!r}; choose one of {sorted(READERS)}")
    if fmt == "midi":
        return read_midi(path, track=midi_track, channel=midi_channel)
    return READERS[fmt](path)


def is_note_file(path) -> bool:
    name = Path(path).name.lower()
    return not name.startswith(".") and name.endswith(NOTE_FILE_SUFFIXES)


def read_note_folder(folder, fmt=None, midi_track=None, midi_channel=None):
    """`{song: notes}` from a folder of per-song note files, matched by `song_id`; where several
    files belong to one song the preferred one (SUFFIX_PREFERENCE) is read. `midi_track` /
    `midi_channel` apply to every MIDI file read (see `read_notes`)."""
    chosen = {}
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or not is_note_file(path):
            continue
        rank = next(i for i, s in enumerate(SUFFIX_PREFERENCE) if path.name.lower().endswith(s))
        song = song_id(path)
        if song not in chosen or rank < chosen[song][0]:
            chosen[song] = (rank, path)
    return {song: read_notes(path, fmt, midi_track, midi_channel)
            for song, (_, path) in sorted(chosen.items())}


def read_note_source(path, fmt=None, split=None, midi_track=None, midi_channel=None) -> dict:
    """`{song: notes}` from whatever names notes: a note file (`{song_id: notes}`), a folder of
    them (`read_note_folder`) or a dict file (`read_note_collection`, `split` choosing N20EMv2
    songs); `midi_track` / `midi_channel` choose the part of every MIDI file read (see
    `read_midi`). What svt-score reads on each side and svt-transcribe --reference reads."""
    path = Path(path)
    if path.is_dir():
        songs = read_note_folder(path, fmt, midi_track, midi_channel)
        if not songs:
            raise NoteFileError(f"{path}: the folder holds no note files (.json, .csv, .mid, .txt, "
                                ".notes.Corrected)")
        return songs
    if not path.exists():
        raise NoteFileError(f"{path}: no such file or folder")
    # Detect once and hand the result on: read_notes would otherwise parse the file and warn about
    # an ambiguous guess a second time.
    fmt = fmt or detect_format(path)
    if fmt == "json-dict":
        return read_note_collection(path, split=split)
    return {song_id(path): read_notes(path, fmt, midi_track, midi_channel)}


# --------------------------------------------------------------------------------------- writers

def _as_notes(notes):
    return np.asarray(notes, dtype=np.float64).reshape(-1, 3)


def notes_to_json_text(notes) -> str:
    return json.dumps([[float(a), float(b), float(p)] for a, b, p in _as_notes(notes)]) + "\n"


def write_notes_json(path, notes) -> None:
    write_text_atomic(path, notes_to_json_text(notes))


def write_notes_csv(path, notes) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["onset", "offset", "pitch"])
    for a, b, p in _as_notes(notes):
        writer.writerow([f"{a:.6f}", f"{b:.6f}", f"{p:g}"])
    write_text_atomic(path, buffer.getvalue())


#: MIDI export timing: 120 bpm and 480 ticks per beat gives 960 ticks per second (~1 ms).
MIDI_TICKS_PER_BEAT = 480
MIDI_TEMPO = 500000


#: Pitch-bend range assumed by General MIDI synthesisers (+-2 semitones).
MIDI_BEND_RANGE = 2.0


def write_notes_midi(path, notes, velocity=100, program=0) -> None:
    """One-track standard MIDI file; times are exact to 1/960 s whatever tempo a reader assumes,
    because the tempo is written explicitly. A fractional pitch becomes the nearest note plus a
    pitch bend (General MIDI's +-2-semitone range) sent just before it; files of integer pitches
    carry no bends."""
    import mido

    def ticks(seconds):
        return int(round(mido.second2tick(seconds, MIDI_TICKS_PER_BEAT, MIDI_TEMPO)))

    events = []
    for a, b, p in _as_notes(notes):
        pitch = int(np.clip(np.round(p), 0, 127))
        bend = int(np.clip(np.round((p - np.round(p)) / MIDI_BEND_RANGE * 8192), -8192, 8191))
        start, end = ticks(a), ticks(b)
        end = max(end, start + 1)
        events.append((end, 0, "note_off", pitch, 0))  # note-offs first at equal ticks
        events.append((start, 1, "note_on", pitch, bend))
    events.sort()
    midi = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_BEAT)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now, current_bend = 0, 0
    for tick, _, kind, pitch, bend in events:
        if kind == "note_on" and bend != current_bend:
            track.append(mido.Message("pitchwheel", pitch=bend, time=tick - now))
            now, current_bend = tick, bend
        track.append(mido.Message(kind, note=pitch, velocity=velocity if kind == "note_on" else 0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    with atomic_path(path) as tmp:
        midi.save(str(tmp))
