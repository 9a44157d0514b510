"""`svt-live [--input FILE] [--out-dir DIR] [--midi-port NAME]`: singing to notes while it is sung.

Audio comes from the default microphone (PortAudio through `sounddevice`; `--list-devices`,
`--input-device`), or from `--input FILE` streamed as if it were live (`--realtime` paces it at the
speed of the recording; by default it goes as fast as the transcriber can). The transcriber is
`svt.LiveTranscriber` (svt/inference/live.py): a frame is final `--latency` seconds of audio after
its time (default 0.3), and a note's start comes a few frames later than that.

Outputs, as they happen:
* stdout: one JSON object a line per event: {"kind": "start", "time": 1.23, "pitch": 64.12,
  "midi": 64, "note": 0, "onset": 1.23, "emitted_at": 1.59} (times in seconds of audio; a start's
  pitch is provisional, an end's is the note's sung pitch; a "drop" ends a started note that the
  model then left out, see svt.NoteEvent), and {"kind": "gap", "time": ...,
  "seconds": ...} where audio was lost (an input overflow: the lost time is filled with silence,
  so the notes stay in audio time);
* a MIDI output port (`--midi-port NAME`, an existing one, or `--virtual-midi-port NAME`, one made
  for other programs to connect to; needs python-rtmidi): note on/off with the nearest note and,
  before each note on, a pitch bend (+-2 semitones) for the sung pitch;
* when stdout is a terminal, a status line on stderr: the current note, its cents off the tempered
  pitch and a level meter.

At the end (the file's end, or Ctrl-C / SIGTERM) the sounding note is ended and, with --out-dir,
the notes are written as `svt-transcribe` writes them: DIR/<name>.json, .csv, .mid (name: the
input file's stem, or --name; "live" for the microphone). Exit status: 0, 130 after Ctrl-C (the
files written are complete), 143 after SIGTERM, 2 for bad options (a MIDI port that does not
exist, no audio device, ...). Dropped audio blocks are counted and reported on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from svt.cli.argtypes import PITCH_PRECISION_CHOICES, PITCH_PRECISION_HELP, positive_float

PROG = "svt-live"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: General MIDI's pitch-bend range (as the .mid files of svt.notes.formats).
BEND_RANGE = 2.0


class CliError(Exception):
    """A problem with the options or the machine; printed as one line, exit status 2."""


def latency_seconds(text: str) -> float:
    from svt.inference.live import MAX_LATENCY, MIN_LATENCY

    value = positive_float(text)
    if not MIN_LATENCY <= value <= MAX_LATENCY:
        raise argparse.ArgumentTypeError(f"{text} s is outside {MIN_LATENCY:g} .. "
                                         f"{MAX_LATENCY:g} s")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=latency_seconds, default=0.3, metavar="SECONDS",
                        help="seconds of audio a frame waits for before it is final (default 0.3)")
    parser.add_argument("--input", default=None, metavar="FILE",
                        help="stream this audio file as if live (default: the microphone)")
    parser.add_argument("--realtime", action="store_true",
                        help="with --input: pace the file at the speed of the recording")
    parser.add_argument("--list-devices", action="store_true",
                        help="list the audio input devices and exit")
    parser.add_argument("--input-device", default=None, metavar="DEVICE",
                        help="audio input device: its number or (part of) its name (default: the "
                             "system's default input)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="microphone sample rate (default: the device's own)")
    parser.add_argument("--block", type=positive_float, default=0.02, metavar="SECONDS",
                        help="audio block size (default 0.02 s)")
    parser.add_argument("--model", default=None,
                        help="model bundle (default: the model shipped in the package)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--pitch-precision", choices=PITCH_PRECISION_CHOICES,
                        default=PITCH_PRECISION_CHOICES[0], help=PITCH_PRECISION_HELP)
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="write the notes here at the end: <name>.json, .csv, .mid")
    parser.add_argument("--name", default=None,
                        help="file name stem in --out-dir (default: the input's stem, or live)")
    parser.add_argument("--format", default="json,csv,mid",
                        help="comma-separated outputs besides JSON: csv, mid (default: all)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files in --out-dir if they exist")
    parser.add_argument("--midi-port", default=None, metavar="NAME",
                        help="send note on/off and pitch bends to this MIDI output port")
    parser.add_argument("--virtual-midi-port", default=None, metavar="NAME",
                        help="make a virtual MIDI output port of this name and send to it")
    parser.add_argument("--no-display", action="store_true",
                        help="no status line, even on a terminal")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    return parser


# ---------------------------------------------------------------------------- MIDI

def midi_output_names() -> list:
    """The MIDI output ports of this machine (mido + python-rtmidi); CliError when there is no
    MIDI system to ask."""
    try:
        import mido

        return list(mido.get_output_names())
    except ImportError as err:
        raise CliError(f"MIDI output needs python-rtmidi ({err}); install it with "
                       "`pip install python-rtmidi`") from None
    except Exception as err:  # rtmidi's SystemError where there is no ALSA sequencer, ...
        raise CliError(f"cannot list the MIDI output ports ({type(err).__name__}: "
                       f"{str(err).strip() or 'no MIDI system'}); this machine has no usable "
                       "MIDI system") from None


def open_midi(name=None, virtual=None):
    """The mido output port asked for: an existing port `name` (CliError listing the ports when
    there is none of that name) or a new virtual port `virtual`."""
    import mido

    if virtual is not None:
        try:
            return mido.open_output(virtual, virtual=True)
        except ImportError as err:
            raise CliError(f"MIDI output needs python-rtmidi ({err}); install it with "
                           "`pip install python-rtmidi`") from None
        except Exception as err:
            raise CliError(f"cannot make the virtual MIDI port {virtual!r} ({type(err).__name__}: "
                           f"{str(err).strip()}); virtual ports need ALSA (Linux) or CoreMIDI "
                           "(macOS)") from None
    names = midi_output_names()
    if name not in names:
        listed = ", ".join(repr(n) for n in names) if names else "none"
        raise CliError(f"--midi-port {name!r}: no MIDI output port of that name; the available "
                       f"ports are: {listed} (or make one with --virtual-midi-port NAME)")
    try:
        return mido.open_output(name)
    except Exception as err:
        raise CliError(f"--midi-port {name!r}: cannot open it ({type(err).__name__}: "
                       f"{str(err).strip()})") from None


class MidiSender:
    """Note events to MIDI messages on `port` (anything with `send(message)`): a pitch bend for the
    sung pitch and a note on at a start, a note off at the end (the note number of its note on)."""

    def __init__(self, port, velocity: int = 100, channel: int = 0):
        self.port, self.velocity, self.channel = port, int(velocity), int(channel)
        self.sounding = {}

    @staticmethod
    def note_and_bend(pitch: float):
        note = int(min(max(round(pitch), 0), 127))
        bend = int(min(max(round((pitch - note) / BEND_RANGE * 8192), -8192), 8191))
        return note, bend

    def send(self, event) -> None:
        import mido

        if event.kind == "start":
            note, bend = self.note_and_bend(event.pitch)
            self.sounding[event.note] = note
            self.port.send(mido.Message("pitchwheel", pitch=bend, channel=self.channel))
            self.port.send(mido.Message("note_on", note=note, velocity=self.velocity,
                                        channel=self.channel))
        elif event.kind in ("end", "drop") and event.note in self.sounding:
            self.port.send(mido.Message("note_off", note=self.sounding.pop(event.note),
                                        velocity=0, channel=self.channel))

    def close(self) -> None:
        import mido

        for note in self.sounding.values():
            self.port.send(mido.Message("note_off", note=note, velocity=0, channel=self.channel))
        self.sounding.clear()
        close = getattr(self.port, "close", None)
        if close:
            close()


# ---------------------------------------------------------------------------- audio input

def import_sounddevice():
    """sounddevice, or CliError saying what is missing (the package, or PortAudio)."""
    try:
        import sounddevice
    except ImportError:
        raise CliError("the microphone needs sounddevice (`pip install sounddevice`); or stream "
                       "a file with --input FILE") from None
    except OSError as err:  # the package is there, the PortAudio library is not
        raise CliError(f"the microphone needs the PortAudio library ({err}); install it (e.g. "
                       "`apt install libportaudio2`, `brew install portaudio`), or stream a file "
                       "with --input FILE") from None
    return sounddevice


def list_devices() -> str:
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0]
    except Exception as err:
        raise CliError(f"cannot list the audio devices ({err})") from None
    lines = []
    for index, device in enumerate(devices):
        if device.get("max_input_channels", 0) > 0:
            mark = "*" if index == default else " "
            lines.append(f"{mark} {index:>3}  {device['name']}  ({device['max_input_channels']} "
                         f"in, {device['default_samplerate']:g} Hz)")
    return "\n".join(lines) if lines else "no audio input devices"


def file_blocks(path, block_seconds, realtime, stop):
    """`(samples, sample_rate, lost_seconds)` blocks of an audio file read as a stream."""
    import soundfile as sf

    from svt.audio import AudioError, audio_info

    try:
        rate, _, _ = audio_info(path)
        handle = sf.SoundFile(str(path))
    except AudioError as err:
        raise CliError(str(err)) from None
    except (RuntimeError, sf.LibsndfileError) as err:
        raise CliError(f"{path}: cannot read this audio file ({err})") from None
    size = max(1, int(round(block_seconds * rate)))
    started, pushed = time.monotonic(), 0
    with handle:
        while not stop.is_set():
            data = handle.read(size, dtype="float32", always_2d=True)
            if len(data) == 0:
                return
            if realtime:
                ahead = pushed / rate - (time.monotonic() - started)
                if ahead > 0:
                    stop.wait(ahead)
            pushed += len(data)
            yield data, rate, 0.0


def microphone_blocks(device, sample_rate, block_seconds, stop, overflows):
    """`(samples, sample_rate, lost_seconds)` blocks from an input device. Blocks the processing
    could not take in time (a full queue) and input overflows are counted in `overflows`
    (a dict) and come back as lost seconds, to be filled with silence."""
    sd = import_sounddevice()
    if device is not None and device.isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, "input")
    except Exception as err:
        raise CliError(f"--input-device {device!r}: {err}; see --list-devices") from None
    rate = int(sample_rate or info["default_samplerate"])
    size = max(1, int(round(block_seconds * rate)))
    blocks = queue.Queue(maxsize=max(8, int(10 / block_seconds)))  # about 10 s of audio
    # Lost samples travel in order with the blocks: a block carries the samples lost just before
    # it (an overflow seen on the driver's capture clock, or blocks dropped on a full queue).
    lost = {"samples": 0, "next_adc": None}

    def callback(indata, frames, time_info, status):
        if status.input_overflow:
            overflows["input_overflow"] = overflows.get("input_overflow", 0) + 1
        adc = getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0
        if adc > 0 and lost["next_adc"] is not None and adc - lost["next_adc"] > 0.5 * size / rate:
            lost["samples"] += int(round((adc - lost["next_adc"]) * rate))
        lost["next_adc"] = adc + frames / rate if adc > 0 else None
        try:
            blocks.put_nowait((indata.copy(), lost["samples"]))
            lost["samples"] = 0
        except queue.Full:
            lost["samples"] += frames
            overflows["queue_full"] = overflows.get("queue_full", 0) + 1

    try:
        stream = sd.InputStream(device=device, channels=1, samplerate=rate, blocksize=size,
                                dtype="float32", callback=callback)
    except Exception as err:
        raise CliError(f"cannot open the audio input ({err}); see --list-devices") from None
    with stream:
        print(f"{PROG}: listening on {info['name']!r} at {rate} Hz; Ctrl-C ends", file=sys.stderr)
        while not stop.is_set():
            try:
                data, missing = blocks.get(timeout=0.1)
            except queue.Empty:
                continue
            yield data, rate, missing / rate


# ---------------------------------------------------------------------------- terminal display

def note_name(pitch: float) -> str:
    note = int(round(pitch))
    return f"{NOTE_NAMES[note % 12]}{note // 12 - 1}"


def status_line(pitch: float, level_db: float, width: int = 20) -> str:
    """`A4  +12 cents  [#######             ] -23 dB` (or `--` when nothing is sung)."""
    if math.isfinite(pitch):
        cents = int(round((pitch - round(pitch)) * 100))
        sung = f"{note_name(pitch):<4}{cents:+4d} cents"
    else:
        sung = f"{'--':<4}{'':>10}"
    level = max(-60.0, min(0.0, level_db if math.isfinite(level_db) else -60.0))
    filled = int(round((level + 60) / 60 * width))
    return f"{sung}  [{'#' * filled}{' ' * (width - filled)}] {level:4.0f} dB"


# ---------------------------------------------------------------------------- the run

def output_paths(args) -> dict:
    """{suffix: path} of the files --out-dir gets; CliError where they cannot be written."""
    from svt.inference.files import TranscribeFilesError, check_out_dir, parse_formats, song_name

    if args.out_dir is None:
        return {}
    try:
        formats = parse_formats(args.format)
    except TranscribeFilesError as err:
        raise CliError(str(err)) from None
    name = args.name or (song_name(args.input) if args.input else "live")
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise CliError(f"--name {name!r} cannot name a file")
    out_dir = Path(args.out_dir)
    problem = check_out_dir(out_dir)
    if problem:
        raise CliError(problem)
    paths = {suffix: out_dir / f"{name}{suffix}"
             for suffix in [".json", *(f".{f}" for f in sorted(formats - {"json"}))]}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not args.overwrite:
        raise CliError(f"{', '.join(existing)} exist(s); pass --overwrite to replace, or another "
                       "--out-dir / --name")
    return paths


def write_outputs(paths: dict, notes) -> None:
    from svt.notes.formats import write_notes_csv, write_notes_json, write_notes_midi

    writers = {".csv": write_notes_csv, ".mid": write_notes_midi}
    for suffix, path in paths.items():
        if suffix != ".json":
            writers[suffix](path, notes)
    if ".json" in paths:  # last, as svt-transcribe: a JSON means the outputs are complete
        write_notes_json(paths[".json"], notes)


class Display:
    """The status line on stderr (only when stdout is a terminal), cleared before each JSON line
    so the two never mix."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.shown = False
        self.last = 0.0

    def clear(self):
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False

    def update(self, live, force=False):
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        sys.stderr.write("\r\x1b[K" + status_line(live.current_pitch, live.level_db))
        sys.stderr.flush()
        self.shown = True


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.realtime and args.input is None:
        build_parser().error("--realtime paces --input FILE; the microphone is real time anyway")
    if args.midi_port is not None and args.virtual_midi_port is not None:
        build_parser().error("give --midi-port or --virtual-midi-port, not both")
    if args.threads is not None and args.threads < 1:
        build_parser().error("--threads must be at least 1")
    try:
        if args.list_devices:
            print(list_devices())
            return 0
        return run(args)
    except CliError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the stream started, or a second Ctrl-C while writing
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def run(args) -> int:
    """Stream the input through a LiveTranscriber; the exit status."""
    from svt.errors import SvtUserError

    stop = threading.Event()
    received = []

    def on_signal(signum, frame):
        if stop.is_set():  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    # Checked before the model loads, so a wrong option costs nothing.
    if args.input is not None and not Path(args.input).is_file():
        raise CliError(f"--input {args.input}: no such file")
    paths = output_paths(args)
    if args.input is None:
        import_sounddevice()
    midi = None
    if args.midi_port is not None or args.virtual_midi_port is not None:
        midi = MidiSender(open_midi(args.midi_port, args.virtual_midi_port))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from svt.inference.live import LiveTranscriber

    try:
        live = LiveTranscriber(args.model, latency=args.latency, device=args.device,
                               pitch_precision=args.pitch_precision)
    except (SvtUserError, ValueError) as err:
        raise CliError(str(err)) from None
    display = Display(sys.stdout.isatty() and not args.no_display)
    overflows, lost_total = {}, 0.0
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    stdout_open = [True]

    def write_line(record):
        """One JSON line on stdout. A reader that goes away (`svt-live ... | head`) ends the
        JSON lines only: the notes still go to the MIDI port and --out-dir; with neither, the
        stream stops as at the end of the input."""
        if not stdout_open[0]:
            return
        try:
            print(json.dumps(record), flush=True)
        except BrokenPipeError:
            stdout_open[0] = False
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own flush at exit is quiet
            os.close(devnull)
            if paths or midi is not None:
                print(f"{PROG}: stdout was closed; the notes still go to the other outputs",
                      file=sys.stderr)
            else:
                stop.set()

    def emit(events):
        for event in events:
            display.clear()
            write_line(event.to_dict())
            if midi is not None:
                midi.send(event)

    try:
        if args.input is not None:
            blocks = file_blocks(args.input, args.block, args.realtime, stop)
            print(f"{PROG}: streaming {args.input}" + (" at 1x" if args.realtime else "")
                  + f", latency {args.latency:g} s", file=sys.stderr)
        else:
            blocks = microphone_blocks(args.input_device, args.sample_rate, args.block, stop,
                                       overflows)
        for data, rate, lost in blocks:
            if lost > 0:
                if live.sample_rate is None:
                    live.push(data[:0], rate)  # the gap is counted in samples of this rate
                lost_total += lost
                display.clear()
                write_line({"kind": "gap", "time": live.time, "seconds": lost})
                emit(live.mark_gap(lost))
            emit(live.push(data, rate))
            display.update(live)
            if stop.is_set():
                break
    finally:
        signal.signal(signal.SIGINT, previous[signal.SIGINT])  # a Ctrl-C now stops the writing
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
        if live.sample_rate is not None:
            emit(live.flush())
        display.clear()
        if midi is not None:
            midi.close()
        if paths:
            write_outputs(paths, live.notes)
    summary = f"{PROG}: {len(live.notes)} notes in {live.time:.1f} s of audio"
    if overflows or lost_total:
        summary += (f"; {sum(overflows.values())} dropped or overflowed input block(s)"
                    f" ({', '.join(f'{k}: {v}' for k, v in sorted(overflows.items()))}), "
                    f"{lost_total:.3f} s of audio lost, filled with silence")
    if live.cut_notes:
        summary += f"; {live.cut_notes} note(s) cut at {live.max_note_seconds:g} s"
    print(summary, file=sys.stderr)
    for path in paths.values():
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    if received:
        print(f"{PROG}: interrupted; the last note was ended and the files are complete",
              file=sys.stderr)
        return 130 if received[-1] == signal.SIGINT else 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
