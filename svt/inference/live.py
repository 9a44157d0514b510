"""Streaming transcription: audio pushed in blocks of any size, note events out once they are final.

    import svt
    live = svt.LiveTranscriber(latency=0.3)            # the model shipped in the package
    for block in blocks:                              # any size (1 sample .. minutes), any rate
        for event in live.push(block, 44100):
            print(event.kind, event.time, event.pitch)  # "start" 1.23 64.1 / "end" 1.71 64.02
    for event in live.flush():                        # the end of the note still sounding
        ...
    notes = live.notes                                # (N, 3) [onset_s, offset_s, midi]

Events (`NoteEvent`) are note starts (the onset, with a provisional pitch: the sung pitch of the
note's first final frames) and note ends (the offset, with the note's final sung pitch), in audio
time (seconds from the first sample pushed), in time order; every start has its end (`flush()`
ends a sounding note).

How the frames are made (`FrameStepper`): windowed inference of the offline model on a fixed
grid. Step k makes the frames `[k*hop, (k+1)*hop)` final from the audio
`[k*hop - left, (k+1)*hop + right)` and runs as soon as that audio has arrived, so a frame is
final at most `latency = hop + right` seconds of audio after its own time and the network never
reads further ahead than that. With the shipped model (frozen FCPE pitch network + BiGRU context
network) the pitch network, the forward GRUs and the backward GRUs all see only that window: the
look-ahead of every part is bounded by the latency. The forward GRUs' states are carried from step
to step (`carry_state`), so the context network keeps the whole past at the cost of one window. Steps
sit at absolute sample positions, so the frames, and the notes, never depend on how the audio was
cut into pushes; the work per step and the memory (a buffer of one window) stay the same for
hours. An encoder without a GRU context network runs the same windows without a carried state
(`model.frame_outputs` per window); the decoder must be one of a pitch network's.

How the notes are made (`NoteTracker`): the bundle's decoder ("pitch": voiced runs cut at the
learned onsets and where the sung pitch settles on a new level,
`svt.notes.decoding.pitch_frames_to_notes`; or "voiced") run on the stream of final frames, frame
by frame, with `NoteTracker.LOOKAHEAD` frames of look-ahead for its own decisions (an onset peak,
the end of a voiced run). A start goes out once its note is sure to last `min_frames` (5 frames),
about 0.1 s after its first frame is final; a note the head then turns out to hear as silence
(`svt.notes.decoding.notes_the_head_hears`, as offline) ends with a "drop" event and is left out
of the notes. A note's end goes out once the note is cut or its voiced stretch ends, at the frame
where the head heard it end (`svt.notes.decoding.heard_offset`, as offline). Changes of level
are found by the same least-squares segmentation (PELT), run online; a level cut is committed
once it has held for `level_horizon` seconds (a note starting at a level change starts that much
later). The notes are bit-identical to `decode_frames`' "pitch" decoder (onset delay, silence
and offset rules included) on the same frames whenever no level
cut is committed before its piece of a voiced run ends (tested on random frame sequences with an
unbounded horizon); with the default horizon, the offline frames decoded in stream scored within
0.3 F1 points of the offline decoder. A note is cut after `max_note_seconds`, which bounds the
memory of one note.

At a latency of 5.554 s or more (the shipped model's 5-s chunks, plus `svt.transcribe`'s 0.5 s
of context and the last frame's window) the steps are exactly `svt.transcribe`'s chunks and the
GRU state is not carried, so the notes are those of the offline transcription of the same 16 kHz
audio (tested: identical arrays), except on a recording where the pitch network strayed from
the voice on more than 30 % of the notes (typically under a backing track): offline, all the
notes that strayed take the head's pitch (`head_pitch_where_pitch_network_strays`), a decision
over the whole recording; the tracker decides on the notes heard so far, from the tenth on
(`NoteTracker`), so the first notes keep the pitch network's pitch.

The model sees 16 kHz mono: other rates are resampled in-stream by soxr (`soxr.ResampleStream`, the
same output whatever the block sizes); channels are averaged; NaN/inf samples are zeroed with a
warning naming where they were. `mark_gap(seconds)` stands for audio that was lost (an input
overflow): silence of that length keeps the note timeline in audio time, and the gaps are counted
(`gaps`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from svt.audio import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    NonFiniteAudioWarning,
    non_finite_spans,
    pcm_as_float,
)
from svt.errors import SvtUserError
from svt.notes.decoding import (
    LEVEL_SMOOTHING_FRAMES,
    MAX_ONSET_DELAY,
    ONSET_HALF_WINDOW,
    SCOOP_FRAMES,
    START_EVIDENCE_FRAMES,
    STRAY_MIN_NOTES,
    STRAY_SHARE,
    head_hears_silence,
    head_midi,
    heard_offset,
    head_vote,
    heard_start,
    stable_pitch,
    strayed_from_head,
)

#: The latency budgets (seconds) a LiveTranscriber accepts.
MIN_LATENCY, MAX_LATENCY = 0.05, 30.0
#: Default left context (seconds of audio before the frames a step makes final).
DEFAULT_LEFT_CONTEXT = 0.3
#: A note is cut after this long (memory of one note is bounded; offline never cuts).
DEFAULT_MAX_NOTE_SECONDS = 30.0


class LiveError(SvtUserError, ValueError):
    """A bad push (sample rate changed, wrong shape or type) or bad settings; the message says
    what to do."""


@dataclass(frozen=True)
class NoteEvent:
    """A note start or end, in audio time.

    kind: "start", "end" or "drop". time: seconds from the first sample pushed (the note's onset
    for a start, its offset for an end or a drop). pitch: fractional MIDI (a start's is
    provisional: the sung pitch of the note's first final frames; an end's is the note's final
    sung pitch). note: the note's number (a start and its end share it). onset: the note's onset
    (the same as `time` for a start). emitted_at: how much audio (seconds) had been pushed when
    the event was made.

    A "drop" ends a started note that turned out not to be one: the head heard silence on most
    of its frames (`svt.notes.decoding.head_hears_silence`; mostly an instrument or a breath the
    pitch network followed). Treat it as the note's end (a note-off) and forget the note: the
    transcriber's `notes` leave it out, as the offline decoder does."""

    kind: str
    time: float
    pitch: float
    note: int
    onset: float
    emitted_at: float = float("nan")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["midi"] = int(np.clip(round(self.pitch), 0, 127))
        return out


# ============================================================================ streaming decoder

class _OnlinePelt:
    """`svt.notes.decoding.pitch_level_cuts` fed one value at a time: the same arithmetic (running
    sums, PELT pruning) so the cuts of the whole sequence are the same; `cuts()` backtracks from the
    values fed so far."""

    def __init__(self, penalty: float, min_frames: int):
        self.penalty, self.min_frames = float(penalty), int(min_frames)
        self.size = 0
        self._grow(256)
        self.best[0] = -self.penalty
        self.candidates = np.zeros(0, dtype=np.int64)

    def _grow(self, capacity):
        old = getattr(self, "s1", None)
        s1, s2 = np.zeros(capacity + 1), np.zeros(capacity + 1)
        best, previous = np.full(capacity + 1, np.inf), np.zeros(capacity + 1, dtype=np.int64)
        if old is not None:
            n = self.size + 1
            s1[:n], s2[:n], best[:n], previous[:n] = (self.s1[:n], self.s2[:n], self.best[:n],
                                                      self.previous[:n])
        self.s1, self.s2, self.best, self.previous = s1, s2, best, previous

    def feed(self, value: float) -> None:
        if self.size + 1 >= len(self.s1):
            self._grow(2 * len(self.s1))
        j = self.size + 1
        self.s1[j] = self.s1[j - 1] + value
        self.s2[j] = self.s2[j - 1] + value * value
        self.size = j
        if j < self.min_frames:
            return
        self.candidates = np.append(self.candidates, j - self.min_frames)
        c = self.candidates
        cost = self.s2[j] - self.s2[c] - (self.s1[j] - self.s1[c]) ** 2 / (j - c)
        total = self.best[c] + cost
        k = int(np.argmin(total))
        self.best[j] = total[k] + self.penalty
        self.previous[j] = c[k]
        self.candidates = c[total <= self.best[j]]

    def cuts(self) -> list:
        """The cuts of the optimal segmentation of the values fed so far, latest first."""
        out, j = [], self.size
        while j > 0:
            j = int(self.previous[j])
            if j > 0:
                out.append(j)
        return out


class NoteTracker:
    """The "pitch" (or "voiced") decoder of `svt.notes.decoding` run on a stream of final frames
    (`push_frames(onset_prob, sung_pitch, head_pitch)`), returning note events as soon as they
    are decided.

    Settings as `pitch_frames_to_notes`'s (min_frames 5, bridge 1 frame, level penalty 32 over
    12-frame levels, cut 2 frames before the change point, none within a piece's first 12
    frames, a run's start heard within 5 frames)
    plus `onset_delay` (as `decode_frames`), `level_horizon` (frames a level cut must hold before
    it is committed) and `max_note_frames`.

    With the head's pitch of each frame (`head_pitch`), a note whose pitch is more than
    `STRAY_SEMITONES` from the head's vote takes the vote once `STRAY_MIN_NOTES` notes were
    heard and more than `STRAY_SHARE` of them strayed so: the offline rule
    (`head_pitch_where_pitch_network_strays`, for a pitch network following a backing track) on
    the share so far. The note's "start" event has gone out with the pitch network's pitch; its
    "end" event and `notes` carry the vote. Before that, a note on whose frames the head heard
    silence (`head_hears_silence`) is left out of `notes`, as the offline decoder leaves it out;
    if its start went out, a "drop" event ends it. With the head's offset probabilities
    (`offset_prob`), a note ends where the head hears it end (`heard_offset` with
    `offset_threshold`), as offline."""

    #: Frames of look-ahead the decisions about frame t need: whether the voiced run goes on to
    #: frame t + 4 (a run or a piece of min_frames), which can take frame t + 5 (a bridged gap);
    #: whether a run's start was heard (`heard_start`: onsets up to frame t + 4).
    LOOKAHEAD = 5
    MIN_FRAMES, BRIDGE, LEVEL_PENALTY, LEVEL_MIN, LEVEL_LEAD = 5, 1, 32.0, 12, 2

    def __init__(self, frame_rate: float = 100.0, onset_threshold: float = 0.5,
                 onset_delay: float = 0.0, decoder: str = "pitch", level_horizon: int = 30,
                 max_note_frames: int = 3000, offset_threshold: float = 0.5):
        if decoder not in ("pitch", "voiced"):
            raise LiveError(f"streaming decodes with the 'pitch' or 'voiced' decoder (models "
                            f"with a pitch network, like the shipped one), not {decoder!r}")
        if not 0.0 <= onset_delay <= MAX_ONSET_DELAY:
            raise LiveError(f"onset_delay is {onset_delay!r} s; expected 0 .. {MAX_ONSET_DELAY}")
        self.frame_rate, self.onset_threshold = float(frame_rate), float(onset_threshold)
        self.offset_threshold = float(offset_threshold)
        self.onset_delay, self.levels = float(onset_delay), decoder == "pitch"
        self.level_horizon = max(int(level_horizon), self.LEVEL_MIN)
        self.max_note_frames = max(int(max_note_frames), 2 * self.LEVEL_MIN + self.MIN_FRAMES)
        self._onset = np.zeros(0)
        self._sung = np.zeros(0)
        self._head = np.zeros(0)
        self._offset = np.zeros(0)
        self._base = 0          # frame number of _onset[0] / _sung[0]
        self.received = 0       # frames pushed
        self.position = 0       # next frame to decide
        self.ended = False
        self.duration = None    # seconds, set by end()
        self.next_note = 0
        self.notes = []         # finished notes [onset, offset, pitch]
        self.cut_notes = 0      # notes cut at max_note_frames
        self.notes_judged = 0   # notes the head's pitch was compared with
        self.notes_strayed = 0  # ... whose pitch strayed from the head's vote
        self.head_pitch_notes = 0  # notes given the head's vote
        self.dropped_notes = 0  # notes left out: the head heard silence on them
        self._run_start = None  # the voiced run frames are in (None: none)
        self._unheard = False   # in a run whose start was not heard, before its first peak
        self._edge = None       # where the run's notes began: the smoothing's "nearest" edge
        self._skip_until = 0    # frames of a run too short to be a note
        self._piece_start = None
        self._piece_level_cuts = 0  # level cuts of the open piece so far
        self._pelt = None
        self._pelt_start = None
        self._levels_buffer = []  # smoothed pitch since _pelt_start (for a restart)
        self._note_start = None
        self._note_raw = []
        self._note_head = []
        self._note_offset = []
        self._note_id = None    # set once its start event went out
        self._events = []

    # ------------------------------------------------------------------ frames
    def _value(self, array, frame, missing):
        if frame < 0 or frame >= self.received:
            if frame >= self.received and not self.ended:
                raise AssertionError("a decision looked past the look-ahead")  # pragma: no cover
            return missing
        return array[frame - self._base]

    def _voiced(self, frame) -> bool:
        return bool(np.isfinite(self._value(self._sung, frame, np.nan)))

    def _sung_at(self, frame) -> float:
        return float(self._value(self._sung, frame, np.nan))

    def _is_peak(self, frame) -> bool:
        """`onset_prob[frame]` is at or above the threshold and the maximum of frames +-3 (the
        onset peaks of `svt.notes.decoding`; the last frame of a recording is left out of every
        window there, which can only matter for frames no note is cut at)."""
        value = self._value(self._onset, frame, -np.inf)
        if not value >= self.onset_threshold:
            return False
        window = [self._value(self._onset, f, -np.inf)
                  for f in range(frame - ONSET_HALF_WINDOW, frame + ONSET_HALF_WINDOW + 1)]
        return value == max(window)

    def _heard_start(self, start) -> bool:
        """`svt.notes.decoding.heard_start` for a run starting at `start`, on the buffered
        onsets around it (frames before the stream's start read as -inf: none)."""
        near = [self._value(self._onset, f, -np.inf)
                for f in range(start - START_EVIDENCE_FRAMES, start + START_EVIDENCE_FRAMES)]
        return heard_start(np.array(near), START_EVIDENCE_FRAMES)

    def _run_reaches(self, frame, need) -> bool:
        """Whether the voiced run holding `frame` goes on to a voiced frame at `need - 1` or later
        (its stop is at least `need`); looks at most at frame `need`."""
        last = frame if self._voiced(frame) else frame - 1
        u = last + 1
        while last < need - 1:
            if self._voiced(u):
                last = u
            elif u - last > self.BRIDGE:
                return False
            u += 1
        return True

    def _run_index(self, frame, offset) -> int:
        """`frame + offset` clamped to the run holding `frame` (scipy's "nearest" edges)."""
        if offset < 0:
            return max(frame + offset, self._edge)
        last = frame if self._voiced(frame) else frame - 1
        u = frame
        for u in range(frame + 1, frame + offset + 1):
            if self._voiced(u):
                last = u
            elif u - last > self.BRIDGE:
                return last
        if not self._voiced(u) and not self._voiced(u + 1):
            return last  # u is past the run's last voiced frame
        return u

    def _interpolated(self, frame) -> float:
        """The run's pitch at `frame`: the sung pitch, or for a bridged unvoiced frame the linear
        interpolation of its neighbours (as `np.interp` in `pitch_frames_to_notes`)."""
        value = self._sung_at(frame)
        if np.isfinite(value):
            return value
        return float(np.interp(1.0, [0.0, 2.0], [self._sung_at(frame - 1),
                                                self._sung_at(frame + 1)]))

    def _smoothed(self, frame) -> float:
        half = LEVEL_SMOOTHING_FRAMES // 2
        if LEVEL_SMOOTHING_FRAMES <= 1:
            return self._interpolated(frame)
        values = [self._interpolated(self._run_index(frame, k)) for k in range(-half, half + 1)]
        return float(np.median(values))

    # ------------------------------------------------------------------ notes
    def _open_piece(self, frame):
        self._piece_start = frame
        self._piece_level_cuts = 0
        self._open_note(frame)
        if self.levels:
            self._pelt = _OnlinePelt(self.LEVEL_PENALTY, self.LEVEL_MIN)
            self._pelt_start = frame
            self._levels_buffer = []

    def _open_note(self, frame):
        self._note_start, self._note_raw, self._note_id = frame, [], None
        self._note_head, self._note_offset = [], []

    def _head_rule(self, pitch, head) -> float:
        """The note's pitch after the running stray rule (see the class)."""
        vote = head_vote(head)
        strays = bool(strayed_from_head(pitch, vote))
        self.notes_judged += 1
        self.notes_strayed += strays
        if (strays and self.notes_judged >= STRAY_MIN_NOTES
                and self.notes_strayed / self.notes_judged > STRAY_SHARE):
            self.head_pitch_notes += 1
            return vote
        return pitch

    def _onset_time(self, start, stop_bound):
        """(`decode_frames`'s delayed onset, whether it is final) for a note from `start` whose
        stop is `stop_bound` or later."""
        onset = start / self.frame_rate
        if not self.onset_delay:
            return onset, True
        latest = stop_bound / self.frame_rate - 1.0 / self.frame_rate
        delayed = min(onset + self.onset_delay, latest)
        final = onset + self.onset_delay <= latest
        return max(delayed, onset), final

    def _pitch(self, raw) -> float:
        raw = np.asarray(raw, dtype=np.float64)
        return stable_pitch(raw) if self.levels else _median_or_nan(raw)

    def _emit_start(self, stop_bound, raw, final_only=True):
        onset, final = self._onset_time(self._note_start, stop_bound)
        if final_only and not final:
            return
        self._note_id = self.next_note
        self.next_note += 1
        self._events.append(("start", onset, self._pitch(raw), self._note_id, onset))

    def _close_note(self, stop):
        """End the open note at frame `stop` (exclusive): a note when long enough."""
        start, raw = self._note_start, self._note_raw[:stop - self._note_start]
        head = self._note_head[:stop - start]
        if stop - start >= self.MIN_FRAMES:
            pitch = self._pitch(raw)
            onset, _ = self._onset_time(start, stop)
            offset = stop / self.frame_rate
            if self.levels:  # where the head hears the note end, as decode_frames moves it
                end = start + heard_offset(np.asarray(self._note_offset[:stop - start]), 0,
                                           stop - start, self.offset_threshold)
                offset = max(end / self.frame_rate if end < stop else offset,
                             onset + 1.0 / self.frame_rate)
            # The "pitch" decoder's rules, as decode_frames applies them: a note the head heard
            # as silence is left out, then the stray rule.
            if np.isfinite(pitch) and self.levels and head_hears_silence(head):
                self.dropped_notes += 1
                if self._note_id is not None:
                    self._events.append(("drop", offset, pitch, self._note_id, onset))
            elif np.isfinite(pitch):
                if self.levels:
                    pitch = self._head_rule(pitch, head)
                if self._note_id is None:
                    self._emit_start(stop, raw, final_only=False)
                self.notes.append([onset, offset, pitch])
                self._events.append(("end", offset, pitch, self._note_id, onset))
        elif self._note_id is not None:  # pragma: no cover - starts wait for MIN_FRAMES
            raise AssertionError("a started note turned out shorter than min_frames")
        rest, rest_head = self._note_raw[stop - start:], self._note_head[stop - start:]
        rest_offset = self._note_offset[stop - start:]
        self._open_note(stop)
        self._note_raw, self._note_head, self._note_offset = rest, rest_head, rest_offset

    def _close_piece(self, stop):
        """The piece of a run between two cuts ends at `stop`: its level cuts, then its notes."""
        if self.levels:
            cuts = sorted(self._pelt_start + c - self.LEVEL_LEAD for c in self._pelt.cuts())
            for cut in cuts:
                self._level_cut(cut)
        self._close_note(stop)
        self._piece_start = self._pelt = None

    def _level_cut(self, cut):
        """A level cut of the open piece, in order: the piece's first one within `SCOOP_FRAMES`
        of its start is the glide or scoop into the next note, and cuts nothing (as
        `pitch_frames_to_notes`)."""
        first = self._piece_level_cuts == 0
        self._piece_level_cuts += 1
        if not (first and cut - self._piece_start <= SCOOP_FRAMES):
            self._close_note(cut)

    def _commit_levels(self, frame):
        """Commit the level cuts of the open piece that have held for `level_horizon` frames."""
        chain = self._pelt.cuts()  # latest first
        fed = self._pelt.size
        old = [c for c in chain if fed - c >= self.level_horizon]
        if not old:
            return
        for c in sorted(old):
            self._level_cut(self._pelt_start + c - self.LEVEL_LEAD)
        restart = old[0]
        values = self._levels_buffer[restart:]
        self._pelt = _OnlinePelt(self.LEVEL_PENALTY, self.LEVEL_MIN)
        self._pelt_start += restart
        self._levels_buffer = []
        for value in values:
            self._pelt.feed(value)
            self._levels_buffer.append(value)

    # ------------------------------------------------------------------ the frame loop
    def _decide(self, t):
        if self._run_start is None:
            if t < self._skip_until or not self._voiced(t):
                return
            if not self._run_reaches(t, t + self.MIN_FRAMES):
                last, u = t, t + 1  # too short to be a note: skip the run
                while self._voiced(u) or u - last <= self.BRIDGE:
                    last = u if self._voiced(u) else last
                    u += 1
                self._skip_until = last + 1
                return
            self._run_start = self._edge = t
            self._unheard = self.levels and not self._heard_start(t)
            if not self._unheard:
                self._open_piece(t)
        elif (t >= self._run_start + self.MIN_FRAMES and self._is_peak(t)
              and self._run_reaches(t, t + self.MIN_FRAMES)):
            if self._unheard:  # the run's notes begin at its first peak
                self._unheard, self._edge = False, t
            else:
                self._close_piece(t)
            self._open_piece(t)
        elif not self._unheard and t - self._note_start >= self.max_note_frames:
            self.cut_notes += 1
            self._close_piece(t)
            self._open_piece(t)
        run_ends = self._voiced(t) and not self._voiced(t + 1) and not self._voiced(t + 2)
        if self._unheard:  # no note in this run yet
            if run_ends:
                self._run_start, self._unheard = None, False
            return
        self._note_raw.append(self._sung_at(t))
        self._note_head.append(float(self._value(self._head, t, np.nan)))
        self._note_offset.append(float(self._value(self._offset, t, -np.inf)))
        if self.levels:
            value = self._smoothed(t)
            self._pelt.feed(value)
            self._levels_buffer.append(value)
        if run_ends:
            self._close_piece(t + 1)
            self._run_start = None
            return
        if self.levels:
            self._commit_levels(t)
        if self._note_id is None and t + 1 - self._note_start >= self.MIN_FRAMES:
            # The note goes on past t, unless a level cut is committed later: those fall at
            # least LEVEL_MIN - LEVEL_LEAD frames after the level segmentation's start.
            bound = t + 1
            if self.levels:
                bound = min(bound, self._pelt_start + self.LEVEL_MIN - self.LEVEL_LEAD)
            self._emit_start(bound, self._note_raw)

    def _advance(self):
        limit = self.received if self.ended else self.received - self.LOOKAHEAD
        while self.position < limit:
            self._decide(self.position)
            self.position += 1
        keep = max(0, self.position - 2 * self.LOOKAHEAD) - self._base
        if keep > 0:
            self._onset, self._sung = self._onset[keep:], self._sung[keep:]
            self._head, self._offset = self._head[keep:], self._offset[keep:]
            self._base += keep

    def _take_events(self):
        events, self._events = self._events, []
        return events

    def push_frames(self, onset_prob, sung_pitch, head_pitch=None, offset_prob=None) -> list:
        """Final frames in order; returns `(kind, time, pitch, note, onset)` tuples.
        `head_pitch`: the head's pitch of each frame (`svt.notes.decoding.head_midi`; None:
        not known, neither the silence rule nor the stray rule applies to these frames).
        `offset_prob`: the head's offset probability of each frame (None: not known, the notes
        end where their voiced stretch or the next note cuts them)."""
        if self.ended:
            raise LiveError("the stream has ended; start a new tracker")
        onset_prob = np.asarray(onset_prob, dtype=np.float64).reshape(-1)
        sung_pitch = np.asarray(sung_pitch, dtype=np.float64).reshape(-1)
        # Unknown head pitches are infinite: neither a vote nor silence.
        head_pitch = (np.full(len(sung_pitch), np.inf) if head_pitch is None
                      else np.asarray(head_pitch, dtype=np.float64).reshape(-1))
        offset_prob = (np.full(len(sung_pitch), -np.inf) if offset_prob is None
                       else np.asarray(offset_prob, dtype=np.float64).reshape(-1))
        if not len(onset_prob) == len(sung_pitch) == len(head_pitch) == len(offset_prob):
            raise ValueError("onset_prob, sung_pitch, head_pitch and offset_prob must have the "
                             "same number of frames")
        self._onset = np.concatenate([self._onset, onset_prob])
        self._sung = np.concatenate([self._sung, sung_pitch])
        self._head = np.concatenate([self._head, head_pitch])
        self._offset = np.concatenate([self._offset, offset_prob])
        self.received += len(onset_prob)
        self._advance()
        return self._take_events()

    def end(self, duration: float | None = None) -> list:
        """No more frames: decide the last ones, end the sounding note. `duration` (seconds of
        audio): notes are clipped to it as `svt.transcribe` clips them."""
        if self.ended:
            return []
        self.ended = True
        self.duration = duration
        self._advance()
        if self._run_start is not None:  # cannot happen: the last voiced frame ends its run
            self._close_piece(self.received)  # pragma: no cover
            self._run_start = None
        events = self._take_events()
        if duration is not None:  # as transcribe_source: no note may outlast the recording
            late = {e[3] for e in events if e[4] >= duration}
            events = [(kind, time if kind == "start" else min(time, duration), pitch, note, onset)
                      for kind, time, pitch, note, onset in events if note not in late]
            self.notes = [[a, min(b, duration), p] for a, b, p in self.notes if a < duration]
        return events

    def notes_array(self) -> np.ndarray:
        return np.asarray(self.notes, dtype=np.float64).reshape(-1, 3)


def _median_or_nan(values):
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else np.nan


# ======================================================================= frames on a fixed grid

class _SampleBuffer:
    """The recent 16 kHz samples: `[start, end)` in absolute sample numbers; appends are amortised
    O(1) per sample, `drop_before` forgets what no later window needs."""

    def __init__(self):
        self._data = np.zeros(1 << 15, dtype=np.float32)
        self._offset = 0    # index in _data of sample `start`
        self.start = 0
        self.end = 0

    def append(self, samples: np.ndarray) -> None:
        n = len(samples)
        used = self.end - self.start
        if self._offset + used + n > len(self._data):
            capacity = len(self._data)
            while used + n > capacity // 2:
                capacity *= 2
            data = np.zeros(capacity, dtype=np.float32) if capacity != len(self._data) else \
                self._data
            data[:used] = self._data[self._offset:self._offset + used]
            self._data, self._offset = data, 0
        self._data[self._offset + used:self._offset + used + n] = samples
        self.end += n

    def read(self, start: int, stop: int) -> np.ndarray:
        if start < self.start or stop > self.end:  # pragma: no cover - the stepper's own bug
            raise AssertionError(f"samples {start}..{stop} are not held ({self.start}..{self.end})")
        return self._data[self._offset + start - self.start:self._offset + stop - self.start].copy()

    def drop_before(self, sample: int) -> None:
        sample = min(max(sample, self.start), self.end)
        self._offset += sample - self.start
        self.start = sample


class FrameStepper:
    """Final frame predictions of a model for a stream of 16 kHz samples, on a fixed grid.

    Step k makes frames `[k * hop_frames, (k + 1) * hop_frames)` final from the samples
    `[max(0, k * hop_frames - left_frames) * hop, (k + 1) * hop_frames * hop + right_samples)`,
    as soon as they have arrived (`push`); `finish()` runs the steps left, the last windows ending
    at the last sample. Each step returns `(onset, offset, octave, pitch_class, sung_pitch)` for its
    frames (`sung_pitch` NaN without a pitch network), as `TranscriptionModel.frame_outputs`
    gives them for the window. With `carry_state` (pitch-network encoders, whose context network is
    a GRU) the forward GRUs start each step from the state the previous step ended its frames
    with, instead of from zero at the window's start."""

    def __init__(self, model, hop_frames: int, left_frames: int, right_samples: int,
                 carry_state: bool = False):
        import torch

        self.torch = torch
        self.model = model
        self.encoder = model.encoder
        self.hop = int(round(self.encoder.sample_rate / self.encoder.frame_rate))
        self.hop_frames, self.left_frames = int(hop_frames), int(left_frames)
        self.right_samples = int(right_samples)
        if self.hop_frames < 1 or self.left_frames < 0 or self.right_samples < 0:
            raise LiveError("hop must be at least one frame, left and right contexts 0 or more")
        self.carry_state = bool(carry_state)
        if self.carry_state and not isinstance(getattr(self.encoder, "context", None),
                                               torch.nn.GRU):
            raise LiveError("carry_state needs a model whose context network is a GRU (the "
                            "pitch-network encoder of the shipped model)")
        self.device = next(model.parameters()).device
        self.buffer = _SampleBuffer()
        self.step = 0
        self.frames_done = 0
        self._state = None
        if self.carry_state:
            # A forward-only context network (`lookahead_frames`) runs as it is; a bidirectional
            # one is split into its directions.
            self._directions = (self._split_gru(self.encoder.context)
                                if self.encoder.context.bidirectional else None)

    @property
    def received(self) -> int:
        return self.buffer.end

    def _needed(self, k: int) -> int:
        return (k + 1) * self.hop_frames * self.hop + self.right_samples

    def _window_start(self, k: int) -> int:
        return max(0, k * self.hop_frames - self.left_frames)

    def push(self, samples: np.ndarray) -> list:
        """Append 16 kHz samples; the outputs of the steps that became ready (a list of tuples)."""
        self.buffer.append(np.asarray(samples, dtype=np.float32))
        out = []
        while self.received >= self._needed(self.step):
            out.append(self._run(self.step, self._needed(self.step), None))
            self.step += 1
            self.buffer.drop_before(self._window_start(self.step) * self.hop)
        return out

    def finish(self) -> list:
        """The remaining frames, the last windows ending at the last sample."""
        if self.received == 0:
            return []
        total = int(self.encoder.num_frames(self.received))
        out = []
        while self.step * self.hop_frames < total:
            out.append(self._run(self.step, min(self._needed(self.step), self.received), total))
            self.step += 1
        return out

    # ------------------------------------------------------------------ one step
    def _run(self, k, stop_sample, total):
        torch = self.torch
        first = k * self.hop_frames
        stop = first + self.hop_frames if total is None else min(first + self.hop_frames, total)
        begin = self._window_start(k)
        wav = self.buffer.read(begin * self.hop, stop_sample)
        with torch.no_grad():
            wavs = torch.from_numpy(wav).to(self.device)[None]
            if self.carry_state:
                outputs = self._carried(wavs, first - begin, stop - begin)
            else:
                outputs = list(self.model.frame_outputs(wavs))
                if len(outputs) < 5:
                    outputs.append(torch.full_like(outputs[0], math.nan))
                outputs = [o[0, first - begin:stop - begin] for o in outputs]
        self.frames_done = stop
        return tuple(o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy()
                     for o in outputs)

    @staticmethod
    def _split_gru(gru):
        """One unidirectional GRU per layer and direction with the bidirectional GRU's weights."""
        import torch

        directions = []
        for layer in range(gru.num_layers):
            pair = []
            for suffix in ("", "_reverse"):
                size = gru.input_size if layer == 0 else 2 * gru.hidden_size
                single = torch.nn.GRU(size, gru.hidden_size, batch_first=True).to(
                    gru.weight_ih_l0.device)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    weights = getattr(gru, f"{name}_l{layer}{suffix}")
                    getattr(single, f"{name}_l0").data = weights.data
                pair.append(single.eval())
            directions.append(pair)
        return directions

    def _carried(self, wavs, first, stop):
        """Frames `[first, stop)` of the window: the pitch-network encoder's forward pass with the
        forward GRUs starting at `first` from the carried state (`svt.models.pitch_network`)."""
        torch = self.torch
        from svt.models.head import frame_predictions
        from svt.models.pitch_network import salience_to_midi

        enc = self.encoder
        mel, salience = enc.pitch_features(wavs)
        confidence, _ = salience.max(dim=-1, keepdim=True)
        f0 = salience_to_midi(salience, enc.fcpe.model.cent_table)
        mel = enc.mel_norm(mel.transpose(1, 2)).transpose(1, 2)
        x = enc.project(torch.cat([mel, salience, confidence], dim=-1))[:, first:]
        pitch = torch.stack([(f0 - 60.0) / 12.0, confidence[..., 0]], dim=-1)[:, first:stop]
        count = stop - first
        if self._directions is None:
            return self._forward_only(x, pitch, count)
        zero = x.new_zeros(1, 1, enc.hidden_size)
        state = self._state or [zero] * len(self._directions)
        new_state = []
        for (forward, backward), h0 in zip(self._directions, state):
            ahead, _ = forward(x, h0)
            new_state.append(ahead[:, count - 1][None].contiguous())  # h after frame stop - 1
            behind, _ = backward(x.flip(1), zero)
            x = torch.cat([ahead, behind.flip(1)], dim=-1)
        self._state = new_state
        features = torch.cat([x[:, :count], pitch], dim=-1)
        onset, offset, octave, pitch_class = frame_predictions(self.model.head(features))
        sung = enc.sung_pitch(features)
        return [t[0] for t in (onset, offset, octave, pitch_class, sung)]


    def _forward_only(self, x, pitch, count):
        """`_carried` for a forward-only context network with `lookahead_frames` L: the GRU
        starts from the state after the previous step's last frame, frame t is read after frame
        t + L, and the state after this step's last frame is carried. Past the stream's end the
        network reads zeros, as it did past an utterance's end in training."""
        torch = self.torch
        from svt.models.head import frame_predictions

        enc = self.encoder
        look = int(getattr(enc, "lookahead_frames", None) or 0)
        x = x[:, :count + look]
        if x.shape[1] < count + look:
            x = torch.cat([x, x.new_zeros(1, count + look - x.shape[1], x.shape[2])], dim=1)
        mine, state = enc.context(x[:, :count], self._state)
        ahead = enc.context(x[:, count:], state)[0] if look else mine[:, :0]
        self._state = state
        context = torch.cat([mine, ahead], dim=1)[:, look:look + count]
        features = torch.cat([context, pitch], dim=-1)
        onset, offset, octave, pitch_class = frame_predictions(self.model.head(features))
        sung = enc.sung_pitch(features)
        return [t[0] for t in (onset, offset, octave, pitch_class, sung)]


# ============================================================================ the transcriber

@dataclass(frozen=True)
class StreamGeometry:
    """How a LiveTranscriber cuts the stream (see `stream_geometry`)."""

    hop_frames: int
    left_frames: int
    right_samples: int
    carry_state: bool
    level_horizon_frames: int
    frame_rate: float
    hop_samples: int

    @property
    def latency(self) -> float:
        """Seconds of audio past a frame before it is final, at most (a step's first frame)."""
        return (self.hop_frames * self.hop_samples + self.right_samples) / SAMPLE_RATE

    def describe(self) -> dict:
        return {"latency_s": self.latency, "hop_s": self.hop_frames / self.frame_rate,
                "right_context_s": self.right_samples / SAMPLE_RATE,
                "left_context_s": self.left_frames / self.frame_rate,
                "carry_state": self.carry_state,
                "level_horizon_s": self.level_horizon_frames / self.frame_rate}


def _check_seconds(name, value, low, high, allow_none=True):
    from svt.inference.bundle import is_finite_number

    if value is None and allow_none:
        return
    if not (is_finite_number(value) and low <= value <= high):
        raise LiveError(f"LiveTranscriber: {name} must be a number of seconds from {low:g} to "
                        f"{high:g}, got {value!r}")


def offline_right_samples(encoder) -> int:
    """The audio `svt.transcribe` reads past a chunk's last frame, in samples: its context
    (`DEFAULT_CONTEXT_SECONDS`, 0.5 s of frames) and the last frame's window (8864 samples for
    the shipped model: 49 frames of 160 samples and a 1024-sample window)."""
    from svt.inference.transcribe import DEFAULT_CONTEXT_SECONDS

    hop = int(round(encoder.sample_rate / encoder.frame_rate))
    context = int(math.ceil(DEFAULT_CONTEXT_SECONDS * encoder.frame_rate))
    window = int(getattr(encoder, "receptive_field", None) or hop)
    return (context - 1) * hop + window


def stream_geometry(model, latency: float, hop=None, left_context=None, carry_state=None,
                    level_horizon=None) -> StreamGeometry:
    """The steps for a latency budget (seconds): the right context is half the budget (at most
    what the offline transcriber reads past a chunk, `offline_right_samples`) and the hop the rest
    (at most the offline chunk, the bundle's `dur_threshold`, 5 s); the left context is 0.3 s
    (`DEFAULT_LEFT_CONTEXT`: with the GRU state carried it only feeds the pitch network, and 0.2
    .. 0.5 s measured the same). At a budget of 5.554 s or more the steps are the offline chunks
    (0.5 s of left context) and the GRU state is not carried, so the frames are exactly
    `svt.transcribe`'s. A level cut is committed after `level_horizon` (default: the latency, at
    least 0.2 s; from 0.2 s on, the offline frames decoded in stream scored within 0.3 F1 points
    of the offline decoder on benchmarks/bench_live.py's recordings)."""
    _check_seconds("latency", latency, MIN_LATENCY, MAX_LATENCY, allow_none=False)
    _check_seconds("hop", hop, 1e-9, MAX_LATENCY)
    _check_seconds("left_context", left_context, 0.0, 60.0)
    _check_seconds("level_horizon", level_horizon, 0.0, 600.0)
    from svt.inference.transcribe import DEFAULT_CONTEXT_SECONDS

    encoder = model.encoder
    frame_rate = float(encoder.frame_rate)
    hop_samples = int(round(encoder.sample_rate / frame_rate))
    budget = int(round(latency * SAMPLE_RATE))
    chunk_frames = max(1, int(round(float(model.settings.get("dur_threshold", 5.0)) * frame_rate)))
    offline_right = offline_right_samples(encoder)
    look = int(getattr(encoder, "lookahead_frames", None) or 0)
    if look:
        # A forward-only network reads `look` frames ahead, plus the pitch network's window
        # for the last of them: the right context is that (at least half the budget).
        needed = look * hop_samples + int(getattr(encoder, "receptive_field", None)
                                          or hop_samples)
        if budget < needed + hop_samples:
            raise LiveError(f"LiveTranscriber: latency {latency:g} s is below this model's "
                            f"look-ahead ({look} frames and the pitch network's window: "
                            f"{(needed + hop_samples) / SAMPLE_RATE:g} s at least)")
    if hop is None and look:
        right = max(budget // 2, needed)
        hop_frames = max(1, min((budget - right) // hop_samples, chunk_frames))
        right = budget - hop_frames * hop_samples
    elif hop is None:
        right = min(budget // 2, offline_right)
        hop_frames = max(1, min((budget - right) // hop_samples, chunk_frames))
        right = min(budget - hop_frames * hop_samples, offline_right)
    else:
        hop_frames = max(1, int(round(hop * frame_rate)))
        right = budget - hop_frames * hop_samples
    if right < 0:
        raise LiveError(f"LiveTranscriber: hop {hop_frames / frame_rate:g} s is longer than the "
                        f"latency {latency:g} s (the right context is what is left of it)")
    if left_context is None:
        left_context = DEFAULT_LEFT_CONTEXT if hop_frames < chunk_frames \
            else DEFAULT_CONTEXT_SECONDS
    left = left_context
    left_frames = int(math.ceil(left * frame_rate))
    import torch

    has_gru = isinstance(getattr(encoder, "context", None), torch.nn.GRU)
    if carry_state is None:
        carry_state = has_gru and hop_frames < chunk_frames
    horizon = max(latency, 0.2) if level_horizon is None else level_horizon
    return StreamGeometry(hop_frames, left_frames, int(right), bool(carry_state),
                          max(1, int(round(horizon * frame_rate))), frame_rate, hop_samples)


class LiveTranscriber:
    """Streaming singing transcription (see the module docstring).

    Args:
        model: a loaded model or a bundle path (None: the model shipped in the package); its
            decoder must be "pitch" or "voiced" (a model with a pitch network).
        latency: seconds of audio a frame waits for before it is final (0.05 .. 30; default 0.3):
            the look-ahead of the network. Note starts come a few frames later than that (the
            decoder's own look-ahead, `NoteTracker.LOOKAHEAD`), starts found at a change of the
            sung pitch after `level_horizon`.
        hop, left_context, carry_state, level_horizon: override `stream_geometry`'s choices.
        max_note_seconds: a note longer than this is cut (bounds the memory of one note).
        onset_threshold: the decoder's onset threshold (None: the bundle's).
        device: the torch device ("cpu", "cuda", ...).
        pitch_precision: for a model loaded from a path, how its pitch network computes
            ("bfloat16", None's choice, or "float32"), as for `svt.transcribe`.

    `push(samples, sample_rate)` takes a block of any size (1-D mono, or 2-D `(frames,
    channels)`, float or integer PCM) and returns the `NoteEvent`s it decided; `flush()` ends the
    stream (the sounding note ends) and returns the last events; `notes` holds the finished notes.
    """

    def __init__(self, model=None, latency: float = 0.3, *, hop=None, left_context=None,
                 carry_state=None, level_horizon=None,
                 max_note_seconds: float = DEFAULT_MAX_NOTE_SECONDS, onset_threshold=None,
                 device="cpu", pitch_precision=None):
        from svt.inference.bundle import DEFAULT_MODEL, check_pitch_precision, is_finite_number
        from svt.inference.transcribe import resolve_model

        _check_seconds("latency", latency, MIN_LATENCY, MAX_LATENCY, allow_none=False)
        _check_seconds("max_note_seconds", max_note_seconds, 1.0, 3600.0, allow_none=False)
        if onset_threshold is not None and not (is_finite_number(onset_threshold)
                                                and 0 < onset_threshold < 1):
            raise LiveError(f"LiveTranscriber: onset_threshold must be between 0 and 1, got "
                            f"{onset_threshold!r}")
        try:
            if pitch_precision is not None:
                check_pitch_precision(pitch_precision)
            self.model = resolve_model(DEFAULT_MODEL if model is None else model, device,
                                       "audio", pitch_precision)
        except ValueError as err:
            raise LiveError(f"LiveTranscriber: {err}") from None
        self.decoder = self.model.settings.get("decoder", "paper")
        if self.decoder not in ("pitch", "voiced"):
            raise LiveError(f"LiveTranscriber needs a model that decodes with its pitch network "
                            f"(decoder 'pitch' or 'voiced', like the shipped model); this one "
                            f"decodes with {self.decoder!r}: use svt.transcribe for it")
        self.latency = float(latency)
        self.geometry = stream_geometry(self.model, latency, hop, left_context, carry_state,
                                        level_horizon)
        self.onset_threshold = float(onset_threshold or self.model.settings["onset_threshold"])
        self.max_note_seconds = float(max_note_seconds)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Start a new stream with the same model and settings."""
        g = self.geometry
        self._stepper = FrameStepper(self.model, g.hop_frames, g.left_frames, g.right_samples,
                                     g.carry_state)
        self._tracker = NoteTracker(
            g.frame_rate, self.onset_threshold, float(self.model.settings.get("onset_delay", 0.0)),
            self.decoder, level_horizon=g.level_horizon_frames,
            max_note_frames=int(round(self.max_note_seconds * g.frame_rate)),
            offset_threshold=float(self.model.settings["offset_threshold"]))
        self.sample_rate = None
        self._resampler = None
        self.samples_in = 0        # samples pushed, at the input rate (gaps included)
        self.gaps = []             # (time_s, seconds) of audio marked lost
        self.flushed = False
        self.non_finite_samples = 0
        self.level_db = -np.inf    # RMS of the last block pushed (dBFS)
        self.current_pitch = np.nan  # sung pitch of the latest final frame (MIDI, NaN unvoiced)

    @property
    def time(self) -> float:
        """Seconds of audio pushed (gaps included)."""
        return self.samples_in / self.sample_rate if self.sample_rate else 0.0

    @property
    def notes(self) -> np.ndarray:
        """The finished notes `(N, 3)` `[onset_s, offset_s, midi]` (all of them after `flush`)."""
        return self._tracker.notes_array()

    @property
    def cut_notes(self) -> int:
        """Notes cut because they lasted `max_note_seconds`."""
        return self._tracker.cut_notes

    # ------------------------------------------------------------------ input
    def _check_rate(self, sample_rate):
        if sample_rate is None:
            if self.sample_rate is None:
                raise LiveError("push: give the sample rate with the first block "
                                "(push(samples, sample_rate))")
            return self.sample_rate
        try:
            rate = float(sample_rate)
        except (TypeError, ValueError):
            rate = float("nan")
        if not (np.isfinite(rate) and rate == int(rate)
                and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
            raise LiveError(f"push: sample_rate must be a whole number of samples per second, "
                            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, got {sample_rate!r}")
        rate = int(rate)
        if self.sample_rate is not None and rate != self.sample_rate:
            raise LiveError(f"push: the sample rate changed from {self.sample_rate} to {rate} Hz "
                            "in the middle of the stream; resample the blocks to one rate, or "
                            "flush() and reset() to start a new stream")
        return rate

    def _mono(self, samples) -> np.ndarray:
        array = pcm_as_float(np.asarray(samples))
        if array is None:
            raise LiveError(f"push: expected audio samples (float or integer PCM), got an array "
                            f"of {np.asarray(samples).dtype}")
        if array.ndim == 2:
            if array.shape[1] > 256:
                raise LiveError(f"push: a block of shape {array.shape}: blocks are (frames, "
                                "channels); transpose a (channels, frames) array")
            array = array.mean(axis=1) if array.shape[1] else np.zeros(len(array))
        elif array.ndim != 1:
            raise LiveError(f"push: expected a 1-D mono block or a 2-D (frames, channels) block, "
                            f"got shape {array.shape}")
        return np.ascontiguousarray(array, dtype=np.float32)

    def push(self, samples, sample_rate=None) -> list:
        """Feed a block of audio; the note events it decided (see `NoteEvent`)."""
        if self.flushed:
            raise LiveError("push after flush(): the stream has ended; call reset() (or make a "
                            "new LiveTranscriber) to start another")
        rate = self._check_rate(sample_rate)
        wav = self._mono(samples)
        if self.sample_rate is None:
            self.sample_rate = rate
            if rate != SAMPLE_RATE:
                import soxr

                self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        if len(wav) == 0:
            return []
        bad = ~np.isfinite(wav)
        if bad.any():
            spans = non_finite_spans(bad, rate, self.samples_in)
            shown = ", ".join(f"{a / rate:.3f}-{(b + 1) / rate:.3f} s" for a, b in spans[:5])
            warnings.warn(f"push: {int(bad.sum())} samples are NaN or infinite (at {shown}"
                          f"{' and more' if len(spans) > 5 else ''}); they were set to zero",
                          NonFiniteAudioWarning, stacklevel=2)
            self.non_finite_samples += int(bad.sum())
            wav = np.where(bad, np.float32(0.0), wav)
        self.level_db = float(10 * np.log10(np.mean(np.square(wav, dtype=np.float64)) + 1e-12))
        self.samples_in += len(wav)
        return self._feed(wav)

    def mark_gap(self, seconds: float) -> list:
        """Audio of this length was lost (an input overflow): it is replaced by silence, so the
        notes stay in audio time, and recorded in `gaps`. Needs the sample rate (a block pushed)."""
        _check_seconds("gap", seconds, 0.0, 24 * 3600.0, allow_none=False)
        if self.sample_rate is None:
            raise LiveError("mark_gap: push a block first (the gap is counted in its samples)")
        count = int(round(seconds * self.sample_rate))
        if count == 0:
            return []
        self.gaps.append((self.time, count / self.sample_rate))
        events = []
        for start in range(0, count, self.sample_rate):
            n = min(self.sample_rate, count - start)
            self.samples_in += n
            events += self._feed(np.zeros(n, dtype=np.float32))
        return events

    def _feed(self, wav: np.ndarray) -> list:
        events = []
        # At most a second at a time: the sample buffer stays one window long.
        block = self.sample_rate
        for start in range(0, len(wav), block):
            piece = wav[start:start + block]
            if self._resampler is not None:
                piece = self._resampler.resample_chunk(piece)
            events += self._frames(self._stepper.push(piece))
        return events

    def _frames(self, outputs) -> list:
        events = []
        for onset, offset, octave, pitch_class, sung in outputs:
            if len(sung):
                self.current_pitch = float(sung[-1])
            events += self._tracker.push_frames(onset, sung, head_midi(octave, pitch_class),
                                                offset)
        return self._to_events(events)

    def _to_events(self, raw) -> list:
        now = self.time
        return [NoteEvent(kind, float(time), float(pitch), int(note), float(onset), now)
                for kind, time, pitch, note, onset in raw]

    def flush(self) -> list:
        """End the stream: the last frames are decided and the sounding note ends. Later pushes
        are refused until `reset()`."""
        if self.flushed:
            return []
        events = []
        if self._resampler is not None:
            events += self._frames(self._stepper.push(
                self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)))
        events += self._frames(self._stepper.finish())
        self.flushed = True
        duration = self._stepper.received / SAMPLE_RATE
        return events + self._to_events(self._tracker.end(duration))
