"""svt.LiveTranscriber and svt-live: streaming notes that do not depend on the push sizes, equal the
offline transcription at a large latency budget, and come out paired and in time order."""
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import svt
from svt.audio import NonFiniteAudioWarning
from svt.cli import live as cli
from svt.inference.bundle import DEFAULT_MODEL, load_bundle
from svt.inference.live import LiveError, LiveTranscriber, NoteTracker, stream_geometry
from svt.notes.decoding import decode_frames
from svt.notes.formats import read_notes

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


# ---------------------------------------------------------------------------- the decoder alone

def random_frames(rng, n):
    """Onset probabilities and a sung pitch (NaN = unvoiced) with what the decoder must handle:
    runs of every length, single-frame gaps (bridged), level changes inside runs, onset peaks,
    and (with the lower background, below `START_EVIDENCE`) runs whose start was not heard."""
    sung, onset = np.full(n, np.nan), rng.random(n) * (0.3 if rng.random() < 0.5 else 0.15)
    t = 0
    while t < n:
        if rng.random() < 0.3:
            t += int(rng.integers(1, 30))
            continue
        length = int(rng.integers(1, 200))
        run = rng.uniform(50, 75) + rng.normal(0, 0.15, length)
        for _ in range(int(rng.integers(0, 3))):
            run[int(rng.integers(0, length)):] += rng.choice([-2, -1, 1, 3])
        stop = min(t + length, n)
        sung[t:stop] = run[:stop - t]
        onset[t] = rng.uniform(0.5, 1) if rng.random() < 0.7 else onset[t]
        for _ in range(int(rng.integers(0, 4))):
            sung[min(t + int(rng.integers(0, length)), n - 1)] = np.nan
        for _ in range(int(rng.integers(0, 3))):
            onset[min(t + int(rng.integers(0, length)), n - 1)] = rng.uniform(0.4, 1)
        t += length
    return onset, sung


def track(onset, sung, sizes, decoder="pitch", delay=0.02, horizon=10 ** 9, offset=None):
    tracker = NoteTracker(100.0, 0.5, delay, decoder, level_horizon=horizon,
                          max_note_frames=10 ** 9)
    events, i = [], 0
    for size in sizes:
        events += tracker.push_frames(onset[i:i + size], sung[i:i + size], None,
                                      None if offset is None else offset[i:i + size])
        i += size
    rest = None if offset is None else offset[i:]
    events += tracker.push_frames(onset[i:], sung[i:], None, rest)
    events += tracker.end()
    return tracker.notes_array(), events


def check_events(events, notes):
    """Every start has one end after it, times never go back, the ends are the notes."""
    starts = [e for e in events if e[0] == "start"]
    ends = [e for e in events if e[0] == "end"]
    assert [e[3] for e in starts] == [e[3] for e in ends] == list(range(len(notes)))
    order = [e[3] for e in events]
    for note in range(len(notes)):
        assert order.index(note) < len(order) - order[::-1].index(note) - 1
    assert all(np.diff([e[1] for e in events]) >= 0)
    np.testing.assert_array_equal(np.reshape([[e[4], e[1], e[2]] for e in ends], (-1, 3)),
                                  notes.reshape(-1, 3))


@pytest.mark.parametrize("seed", range(40))
def test_tracker_equals_the_offline_decoder(seed):
    rng = np.random.default_rng(seed)
    onset, sung = random_frames(rng, int(rng.integers(0, 1200)))
    decoder = "voiced" if seed % 4 == 0 else "pitch"
    delay = float(rng.choice([0.0, 0.02, 0.1]))
    # The head hears MIDI 36 throughout; its offset output reaches 0.5 now and then.
    offset = rng.random(len(onset)) ** 6
    frames = (onset, offset, np.zeros(len(onset), int), np.zeros(len(onset), int), sung)
    offline = decode_frames(frames, decoder, onset_threshold=0.5, frame_rate=100.0,
                            onset_delay=delay)
    notes, events = track(onset, sung, rng.integers(1, 60, 60), decoder, delay, offset=offset)
    np.testing.assert_array_equal(notes, offline)  # bit for bit
    check_events(events, notes)


@pytest.mark.parametrize("horizon", [12, 30])
def test_tracker_events_with_a_short_level_horizon(horizon):
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        onset, sung = random_frames(rng, 1000)
        notes, events = track(onset, sung, rng.integers(1, 40, 60), horizon=horizon)
        check_events(events, notes)


def test_tracker_settings_are_the_offline_decoders():
    import inspect

    from svt.notes.decoding import pitch_frames_to_notes, voiced_frames_to_notes

    pitch = inspect.signature(pitch_frames_to_notes).parameters
    voiced = inspect.signature(voiced_frames_to_notes).parameters
    for params in (pitch, voiced):
        assert params["min_frames"].default == NoteTracker.MIN_FRAMES
        assert params["bridge_frames"].default == NoteTracker.BRIDGE == 1
    assert pitch["level_penalty"].default == NoteTracker.LEVEL_PENALTY
    assert pitch["level_min_frames"].default == NoteTracker.LEVEL_MIN
    assert pitch["level_lead_frames"].default == NoteTracker.LEVEL_LEAD


def test_tracker_cuts_a_note_at_max_note_frames():
    sung, onset = np.full(400, 60.0), np.zeros(400)
    onset[0] = 0.9  # a heard start
    tracker = NoteTracker(100.0, 0.5, 0.0, "pitch", max_note_frames=100)
    events = tracker.push_frames(onset, sung) + tracker.end()
    assert tracker.cut_notes == 3 and len(tracker.notes) == 4
    check_events(events, tracker.notes_array())


# ---------------------------------------------------------------------------- with the model

@pytest.fixture(scope="module")
def model():
    return load_bundle(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def song():
    from svt.synthetic.recorded_singing import render_recorded_song

    notes, audio, _ = render_recorded_song([0, 1], 4.0)
    return notes, audio


def run_stream(live, wav, sizes=None, rate=SR):
    events, i = [], 0
    for size in (sizes if sizes is not None else [len(wav)]):
        events += live.push(wav[i:i + size], rate)
        i += size
    events += live.push(wav[i:], rate) if i < len(wav) else []
    return events + live.flush()


def summary(events):
    return [(e.kind, e.time, e.pitch, e.note, e.onset) for e in events]


@pytest.fixture(scope="module")
def whole(model, song):
    live = LiveTranscriber(model, latency=0.3)
    events = run_stream(live, song[1])
    return events, live.notes


def test_notes_do_not_depend_on_the_push_sizes(model, song, whole):
    rng = np.random.default_rng(7)
    wav = song[1]
    sizes = [1] * 500 + list(rng.integers(1, 9000, 200))  # single samples, then anything
    live = LiveTranscriber(model, latency=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty push is no warning either
        events = run_stream(live, wav, [0] + sizes)
    assert summary(events) == summary(whole[0])
    np.testing.assert_array_equal(live.notes, whole[1])
    assert len(whole[1]) >= 3


def test_events_are_paired_in_time_order_and_make_the_notes(whole):
    events, notes = whole
    check_events([(e.kind, e.time, e.pitch, e.note, e.onset) for e in events], notes)
    for e in events:
        assert e.emitted_at >= e.time  # nothing is known before it is heard
        assert json.loads(json.dumps(e.to_dict()))["midi"] == int(round(e.pitch))


def test_a_large_latency_gives_the_offline_notes(model, song):
    wav = np.tile(song[1], 3)  # 12 s: three of the offline transcription's 5-s chunks
    live = LiveTranscriber(model, latency=6.0)
    assert live.geometry.hop_frames == 500 and not live.geometry.carry_state
    rng = np.random.default_rng(3)
    run_stream(live, wav, rng.integers(100, 40000, 40))
    offline = svt.transcribe(wav, SR, model=model, batch_size=1)
    np.testing.assert_array_equal(live.notes, offline)
    assert len(offline) >= 9


def test_flush_ends_the_sounding_note(model, song, whole):
    events, notes = whole
    first_end = next(e for e in events if e.kind == "end")
    cut = int((first_end.onset + first_end.time) / 2 * SR)  # inside the first note
    live = LiveTranscriber(model, latency=0.3)
    head = live.push(song[1][:cut], SR)
    assert [e.kind for e in head if e.note == 0] == ["start"]
    tail = live.flush()
    assert tail and tail[-1].kind == "end" and tail[-1].note == 0
    assert tail[-1].time <= cut / SR + 1e-9
    assert live.flush() == []
    with pytest.raises(LiveError, match="after flush"):
        live.push(song[1][:10], SR)


def test_resampled_input_does_not_depend_on_the_push_sizes(model, song):
    import soxr

    wav = soxr.resample(song[1][:2 * SR], SR, 22050).astype(np.float32)
    live = LiveTranscriber(model, latency=1.0)
    one = summary(run_stream(live, wav, rate=22050))
    live.reset()
    stereo = np.stack([wav, wav], axis=1)  # channels are averaged
    many = summary(run_stream(live, stereo, np.random.default_rng(1).integers(1, 3000, 40),
                              rate=22050))
    assert one == many and len(one) >= 2


def test_a_gap_keeps_the_timeline(model, song):
    live = LiveTranscriber(model, latency=0.3)
    live.push(song[1][:SR], SR)
    live.mark_gap(0.5)
    live.push(song[1][SR:2 * SR], SR)
    live.flush()
    assert live.gaps == [(1.0, 0.5)] and live.time == pytest.approx(2.5)
    # The lost half second is silence in the timeline: no note sounds through it.
    assert not any(a < 1.4 and b > 1.1 for a, b, _ in live.notes)


def test_bad_input_is_refused_or_warned(model):
    live = LiveTranscriber(model, latency=0.3)
    with pytest.raises(LiveError, match="sample rate"):
        live.push(np.zeros(10, np.float32))  # no rate yet
    for rate in (3999, 768001, 1e12, 16000.5):
        with pytest.raises(LiveError, match="4000 to 768000"):
            LiveTranscriber(model, latency=0.3).push(np.zeros(10, np.float32), rate)
    assert live.push(np.zeros(0, np.float32), SR) == []
    live.push(np.zeros(100, np.float32), SR)
    with pytest.raises(LiveError, match="changed from 16000 to 44100"):
        live.push(np.zeros(100, np.float32), 44100)
    with pytest.raises(LiveError, match="shape"):
        live.push(np.zeros((2, 2, 2), np.float32), SR)
    with pytest.raises(LiveError, match="frames, channels"):
        live.push(np.zeros((2, 1000), np.float32), SR)
    bad = np.zeros(200, np.float32)
    bad[50:60] = np.nan
    with pytest.warns(NonFiniteAudioWarning, match="10 samples are NaN"):
        live.push(bad, SR)
    assert live.non_finite_samples == 10
    live.push(np.full(100, 32767, np.int16), SR)  # integer PCM is scaled
    for latency in (0.0, 0.01, 31.0, float("nan"), "0.3", None):
        with pytest.raises(LiveError, match="latency"):
            LiveTranscriber(model, latency=latency)
    with pytest.raises(LiveError, match="longer than the latency"):
        stream_geometry(model, 0.3, hop=0.5)
    for count in (1, 159):  # streams shorter than a frame or a step end cleanly
        tiny = LiveTranscriber(model, latency=0.3)
        assert tiny.push(np.full(count, 0.1, np.float32), SR) + tiny.flush() == []
    assert LiveTranscriber(model).flush() == []  # nothing pushed at all
    assert isinstance(LiveError("x"), ValueError)


# ---------------------------------------------------------------------------- svt-live

def test_cli_writes_the_library_notes(tmp_path, song, whole, capsys):
    path = tmp_path / "song.wav"
    sf.write(path, song[1], SR, subtype="FLOAT")  # the very samples the library got
    assert cli.main(["--input", str(path), "--out-dir", str(tmp_path / "out"),
                     "--no-display"]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["kind"], e["time"], e["pitch"]) for e in events] == \
        [(e.kind, e.time, e.pitch) for e in whole[0]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["song.csv", "song.json", "song.mid"]
    reference = tmp_path / "ref"
    cli.write_outputs({s: reference.with_suffix(s) for s in (".json", ".csv", ".mid")}, whole[1])
    for suffix in (".json", ".csv", ".mid"):
        assert (tmp_path / "out" / f"song{suffix}").read_bytes() == \
            reference.with_suffix(suffix).read_bytes()
    np.testing.assert_array_equal(read_notes(tmp_path / "out" / "song.json"), whole[1])
    # The files are not replaced without --overwrite (checked before the model loads).
    assert cli.main(["--input", str(path), "--out-dir", str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_sigint_ends_the_note_writes_the_files_and_exits_130(tmp_path, song):
    path = tmp_path / "take.wav"
    sf.write(path, np.tile(song[1], 3), SR, subtype="FLOAT")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "svt.cli.live", "--input", str(path),
                             "--realtime", "--out-dir", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # the first event: streaming is under way
        assert first, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    events = [json.loads(line) for line in [first, *out.splitlines()]]
    notes = read_notes(tmp_path / "out" / "take.json")
    ends = [e for e in events if e["kind"] == "end"]
    assert len(notes) == len(ends) >= 1
    assert {e["note"] for e in events if e["kind"] == "start"} == {e["note"] for e in ends}
    np.testing.assert_allclose(notes, [[e["onset"], e["time"], e["pitch"]] for e in ends])
    assert notes[-1, 1] < 3 * len(song[1]) / SR - 1  # stopped well before the end
    np.testing.assert_allclose(read_notes(tmp_path / "out" / "take.csv"), notes, atol=1e-3)


def test_cli_reader_that_goes_away_ends_only_the_json_lines(tmp_path, song, whole):
    # `svt-live ... | head -1`: the files still come, equal to the library's notes, with no
    # traceback; with no other output the stream just stops.
    path = tmp_path / "song.wav"
    sf.write(path, song[1], SR, subtype="FLOAT")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for extra in (["--out-dir", str(tmp_path / "out")], []):
        proc = subprocess.Popen([sys.executable, "-m", "svt.cli.live", "--input", str(path),
                                 "--realtime", *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout.readline()
            proc.stdout.close()  # the reader goes away while notes are still coming
            err = proc.stderr.read()
            proc.wait(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "Broken pipe" not in err
    written = read_notes(tmp_path / "out" / "song.json")
    # The same notes. The command runs the pitch network on one thread and this process on the
    # test's threads: on a CPU without native bfloat16 kernels the sums then come in another
    # order and a pitch moves by about 1e-4 semitone (seen on an AMD EPYC), never a boundary.
    np.testing.assert_array_equal(written[:, :2], whole[1][:, :2])
    np.testing.assert_allclose(written[:, 2], whole[1][:, 2], rtol=0, atol=1e-3)


def test_cli_midi_port_that_does_not_exist(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "midi_output_names", lambda: ["Synth A", "Synth B:0"])
    assert cli.main(["--input", __file__, "--midi-port", "Nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'Nope'" in err[0] and "'Synth A', 'Synth B:0'" in err[0]


def test_cli_without_a_midi_system_or_microphone_says_so(capsys):
    def broken():
        raise cli.CliError("cannot list the MIDI output ports (SystemError: no ALSA)")

    try:
        names = cli.midi_output_names()  # a machine with MIDI: just a list
        assert isinstance(names, list)
    except cli.CliError as err:
        assert "MIDI" in str(err)
    try:
        cli.import_sounddevice()
    except cli.CliError as err:  # no sounddevice or no PortAudio (CI): one clear line
        assert cli.main(["--list-devices"]) == 2
        assert "--input FILE" in capsys.readouterr().err
        assert "sounddevice" in str(err) or "PortAudio" in str(err)


def test_midi_messages_for_the_events():
    from svt.inference.live import NoteEvent

    class Port:
        def __init__(self):
            self.messages = []

        def send(self, message):
            self.messages.append(message)

    port = Port()
    sender = cli.MidiSender(port)
    sender.send(NoteEvent("start", 1.0, 60.6, 0, 1.0))
    sender.send(NoteEvent("end", 2.0, 60.4, 0, 1.0))  # the final pitch rounds the other way
    sender.send(NoteEvent("start", 2.5, 64.0, 1, 2.5))
    sender.close()  # the sounding note is turned off
    kinds = [(m.type, getattr(m, "note", None)) for m in port.messages]
    assert kinds == [("pitchwheel", None), ("note_on", 61), ("note_off", 61),
                     ("pitchwheel", None), ("note_on", 64), ("note_off", 64)]
    assert port.messages[0].pitch == round(-0.4 / 2 * 8192) and port.messages[3].pitch == 0


def test_status_line():
    assert cli.status_line(69.12, -20.0).startswith("A4   +12 cents  [")
    assert cli.status_line(float("nan"), -np.inf).startswith("--")
    assert "-60 dB" in cli.status_line(60.0, -np.inf)


def test_cli_rejects_bad_options(capsys):
    for argv in (["--latency", "0"], ["--latency", "100"], ["--realtime"],
                 ["--midi-port", "a", "--virtual-midi-port", "b"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
    assert cli.main(["--input", "no/such/file.wav"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_microphone_adapter_counts_lost_audio(monkeypatch, tmp_path, song, capsys):
    """The device path with a stand-in for sounddevice: an input overflow that lost 0.1 s (the
    capture clock jumps), then Ctrl-C; the lost time is a gap line and silence in the timeline."""
    import threading
    from types import SimpleNamespace

    rate, block = SR, 320
    wav = song[1][:2 * SR]

    class Stream:
        def __init__(self, callback, blocksize, samplerate, **kwargs):
            assert blocksize == block and samplerate == rate
            self.callback = callback

        def run(self):
            adc = 1000.0
            for k, start in enumerate(range(0, len(wav), block)):
                lost = k == 20
                adc += 0.1 if lost else 0.0
                data = wav[start:start + block, None]
                self.callback(data, len(data), SimpleNamespace(inputBufferAdcTime=adc),
                              SimpleNamespace(input_overflow=lost))
                adc += len(data) / rate

        def __enter__(self):
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()
            return self

        def __exit__(self, *exc):
            self.thread.join()

    fake = SimpleNamespace(query_devices=lambda device, kind: {"name": "fake mic",
                                                               "default_samplerate": rate},
                           InputStream=Stream)
    monkeypatch.setattr(cli, "import_sounddevice", lambda: fake)
    push, pushed = LiveTranscriber.push, []

    def push_then_ctrl_c(self, samples, sample_rate=None):
        events = push(self, samples, sample_rate)
        pushed.append(len(samples))
        if sum(pushed) == len(wav):  # all the audio is in: Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        return events

    monkeypatch.setattr(LiveTranscriber, "push", push_then_ctrl_c)
    status = cli.main(["--out-dir", str(tmp_path), "--block", str(block / rate), "--no-display"])
    captured = capsys.readouterr()
    assert status == 130, captured.err
    lines = [json.loads(line) for line in captured.out.splitlines()]
    gaps = [line for line in lines if line["kind"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["seconds"] == pytest.approx(0.1)
    assert gaps[0]["time"] == pytest.approx(20 * block / rate)  # where it was lost
    assert "input_overflow: 1" in captured.err and "0.100 s of audio lost" in captured.err
    notes = read_notes(tmp_path / "live.json")
    assert len(notes) == sum(line["kind"] == "end" for line in lines) >= 1
    assert notes[-1, 1] <= len(wav) / rate + 0.1 + 1e-6


def test_tracker_takes_the_heads_pitch_where_the_pitch_network_strayed_so_far():
    """The offline stray rule (svt.notes.decoding.head_pitch_where_pitch_network_strays) on the
    share of the notes heard so far, from the tenth note on."""
    from svt.notes.decoding import STRAY_MIN_NOTES, STRAY_SHARE, decode_frames

    assert (STRAY_MIN_NOTES, STRAY_SHARE) == (10, 0.3)
    # 16 notes of 20 frames; the head hears MIDI 60 (octave 2, class 0) throughout each note;
    # the pitch network hears 60.2, or a chord tone (67.2) on the notes of `strays`.
    strays, n = {0, 1, 2, 3, 9, 12, 13}, 16 * 20
    onset, sung = np.zeros(n), np.full(n, np.nan)
    octave, pitch_class = np.full(n, 4), np.full(n, 12)      # silent head between notes
    for k in range(16):
        a = 20 * k
        sung[a + 1:a + 19], onset[a + 1] = (67.2 if k in strays else 60.2), 0.9
        octave[a + 1:a + 19], pitch_class[a + 1:a + 19] = 2, 0
    head = np.where(octave == 2, 60.0, np.nan)
    # By hand: note k is judged as the (k + 1)-th; notes 0-3 stray before ten notes were heard;
    # at note 9, 5 of 10 strayed (0.5 > 0.3), at 12, 6 of 13, at 13, 7 of 14: those take 60.
    expected = np.array([67.2 if k in strays else 60.2 for k in range(16)])
    expected[[9, 12, 13]] = 60.0
    tracker = NoteTracker(100.0, 0.5, 0.0, "pitch")
    events = []
    for i in range(0, n, 7):
        events += tracker.push_frames(onset[i:i + 7], sung[i:i + 7], head[i:i + 7])
    events += tracker.end()
    notes = tracker.notes_array()
    np.testing.assert_allclose(notes[:, 2], expected)
    assert (tracker.notes_judged, tracker.notes_strayed, tracker.head_pitch_notes) == (16, 7, 3)
    # Note 9 started with the pitch network's pitch; its end carries the head's.
    assert [round(e[2], 1) for e in events if e[3] == 9] == [67.2, 60.0]
    # Offline, the share over the whole recording (7 of 16) changes all seven.
    offline = decode_frames((onset, onset, octave, pitch_class, sung), "pitch", 0.5,
                            frame_rate=100.0, whole_recording=True)
    np.testing.assert_allclose(offline[:, 2], [60.0 if k in strays else 60.2 for k in range(16)])
    np.testing.assert_allclose(offline[:, :2], notes[:, :2])
    # Without the head's frames, or with the "voiced" decoder, nothing changes.
    for decoder, frames_head in (("pitch", None), ("voiced", head)):
        tracker = NoteTracker(100.0, 0.5, 0.0, decoder)
        tracker.push_frames(onset, sung, frames_head)
        tracker.end()
        np.testing.assert_allclose(tracker.notes_array()[:, 2],
                                   [67.2 if k in strays else 60.2 for k in range(16)])
        assert tracker.head_pitch_notes == 0
    with pytest.raises(ValueError, match="same number of frames"):
        NoteTracker().push_frames(onset, sung, head[:-1])


def test_tracker_drops_the_notes_the_head_hears_as_silence():
    """As the offline decoder (svt.notes.decoding.notes_the_head_hears); a note whose start went
    out ends with a "drop" event instead of an "end"."""
    from svt.notes.decoding import decode_frames

    # Three 30-frame notes; the head hears the second as silence throughout.
    n = 90
    onset, sung = np.zeros(n), np.full(n, np.nan)
    octave, pitch_class = np.full(n, 4), np.full(n, 12)
    for k in range(3):
        a = 30 * k
        sung[a + 1:a + 29], onset[a + 1] = 60.2 + k, 0.9
        if k != 1:
            octave[a + 1:a + 29], pitch_class[a + 1:a + 29] = 2, k
    head = np.where(octave == 2, 60.0 + pitch_class, np.nan)
    offline = decode_frames((onset, onset, octave, pitch_class, sung), "pitch", 0.5,
                            frame_rate=100.0, whole_recording=True)
    np.testing.assert_allclose(offline[:, 2], [60.2, 62.2])
    tracker = NoteTracker(100.0, 0.5, 0.0, "pitch")
    events = []
    for i in range(0, n, 4):
        events += tracker.push_frames(onset[i:i + 4], sung[i:i + 4], head[i:i + 4])
    events += tracker.end()
    np.testing.assert_allclose(tracker.notes_array(), offline)
    assert tracker.dropped_notes == 1
    assert [(kind, note) for kind, _, _, note, _ in events] == [
        ("start", 0), ("end", 0), ("start", 1), ("drop", 1), ("start", 2), ("end", 2)]
    drop = events[3]
    assert drop[1] == pytest.approx(0.59) and drop[4] == pytest.approx(0.31)
    # Without the head's frames the rule cannot apply: three notes.
    tracker = NoteTracker(100.0, 0.5, 0.0, "pitch")
    tracker.push_frames(onset, sung)
    tracker.end()
    assert len(tracker.notes) == 3 and tracker.dropped_notes == 0
