"""Vocal separation before transcription (svt.inference.separation), on a tiny Hybrid Transformer
Demucs built from its config with random weights: the real code path, no download, no network.

What is checked to be equal: the streamed separation (input read, resampled and run window by
window, bounded memory) against demucs' own in-memory `apply_model(model, whole mix, shifts=0,
split=True, overlap)`, which is how demucs separates a song longer than one model window
(HTDemucs cannot take more than its training segment in one call). Both run the same windows, so
the results agree to float rounding (bitwise on CPU), whatever the block size the input is fed in.
"""
import hashlib
import io
import socket
import warnings
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("demucs")

import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
import torch  # noqa: E402
from demucs.apply import BagOfModels, apply_model  # noqa: E402
from demucs.htdemucs import HTDemucs  # noqa: E402

from svt.inference import separation as sep  # noqa: E402
from svt.inference.separation import (  # noqa: E402
    SeparationModelError,
    SeparationModelUnavailable,
    SeparationNotInstalled,
    check_separation_available,
    load_separation_model,
    separate_file,
    separate_vocals,
)

SOURCES = ["drums", "bass", "other", "vocals"]
RATE = 8000  # the tiny model's rate (htdemucs: 44100); everything else is the same code
HTDEMUCS_URL = "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th"

warnings.filterwarnings("ignore", message=".*zero-element tensors.*")


def tiny_htdemucs(seed=0, sources=SOURCES, segment=Fraction(1)):
    """The pretrained model's class with a small config (1-s windows at 8 kHz), random weights."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(sources=list(sources), audio_channels=2, samplerate=RATE, segment=segment,
                         channels=8, dconv_comp=4, depth=2, nfft=512, t_layers=1, t_heads=1)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_htdemucs()


def noise(seconds, channels=2, rate=RATE, seed=1):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, int(seconds * rate)))).astype(np.float32)


def whole_song(model, mix, overlap=0.25):
    """demucs' own in-memory separation of the whole mix (channels, n): the vocals (channels, n)."""
    with torch.no_grad():
        stems = apply_model(model, torch.from_numpy(mix)[None], shifts=0, split=True,
                            overlap=overlap)
    return stems[0, list(model.sources).index("vocals")].numpy()


def package(model, segment=None):
    """A demucs `.th` package as demucs' serialize_model writes it (half-precision state)."""
    args, kwargs = model._init_args_kwargs
    return {"klass": type(model), "args": args, "kwargs": dict(kwargs),
            "state": {k: v.half() for k, v in model.state_dict().items()},
            "training_args": {"dset": {"segment": 10, "sources": list(model.sources)}}}


def save_th(model, folder, sig="0badc0de"):
    """Saved as demucs names its files: <signature>-<sha256[:8]>.th."""
    buf = io.BytesIO()
    torch.save(package(model), buf)
    checksum = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    path = folder / f"{sig}-{checksum}.th"
    path.write_bytes(buf.getvalue())
    return path, checksum


# ------------------------------------------------------------------------------ stitching

@pytest.mark.parametrize("seconds", [0.05, 0.9, 1.0, 1.6, 8.37])
def test_streamed_windows_equal_demucs_whole_song(model, seconds):
    """Shorter than one window, exactly one, between, and a long song (11 windows)."""
    mix = noise(seconds)
    reference = whole_song(model, mix)
    for block_seconds in (30.0, 0.37, 1.0):
        vocals = separate_vocals(mix, RATE, model, output_rate=None, mono=False,
                                 block_seconds=block_seconds)
        assert vocals.shape == (mix.shape[1], 2) and vocals.dtype == np.float32
        np.testing.assert_allclose(vocals.T, reference, rtol=0, atol=1e-6)
        if block_seconds == 30.0:
            first = vocals
        else:  # the block size does not change a single window's input
            assert np.array_equal(vocals, first)


@pytest.mark.parametrize("overlap,segment", [(0.5, None), (0.0, None), (0.25, 0.6)])
def test_overlap_and_shorter_windows_equal_demucs(model, overlap, segment):
    mix = noise(4.3, seed=2)
    with torch.no_grad():
        stems = apply_model(model, torch.from_numpy(mix)[None], shifts=0, split=True,
                            overlap=overlap, segment=segment)
    vocals = separate_vocals(mix, RATE, model, output_rate=None, mono=False, overlap=overlap,
                             segment_seconds=segment, block_seconds=0.7)
    np.testing.assert_allclose(vocals.T, stems[0, 3].numpy(), rtol=0, atol=1e-6)


def test_memory_does_not_grow_with_the_song(model):
    """The stitcher keeps under 1.5 windows of input and one window of unfinished output,
    whatever the song's length (16 s here) and the block size."""
    stitcher = sep._Stitcher(model, None, 0.25, "cpu", None)
    block = 3000
    window = stitcher.length
    mix = torch.from_numpy(noise(16.0, seed=3))
    emitted = 0
    for start in range(0, mix.shape[-1], block):
        for piece in stitcher.push(mix[:, start:start + block]):
            emitted += piece.shape[-1]
        assert stitcher.buf.shape[-1] < 1.5 * window
        assert stitcher.sum_weight.shape[-1] <= window
    emitted += sum(p.shape[-1] for p in stitcher.finish())
    assert emitted == mix.shape[-1]


def test_resampled_mono_input_to_16k_mono_vocals(model):
    """A mono 44.1 kHz mix: duplicated to stereo, resampled (soxr) to the model's rate, the
    vocals mixed to mono and resampled to 16 kHz: the streamed pipeline equals the same steps
    over the whole song, and is as long as the input."""
    mono = noise(5.3, channels=1, rate=44100, seed=4)[0]
    at_model = soxr.resample(mono, 44100, RATE).astype(np.float32)
    reference = whole_song(model, np.stack([at_model, at_model])).mean(0)
    reference = soxr.resample(reference, RATE, 16000)
    vocals = separate_vocals(mono, 44100, model, block_seconds=0.5)
    assert vocals.ndim == 1 and vocals.dtype == np.float32
    assert len(vocals) == round(len(mono) * 16000 / 44100)
    np.testing.assert_allclose(vocals, reference, rtol=0, atol=1e-5)


def test_array_layouts_and_integer_pcm(model):
    mix = noise(2.2, seed=5)
    a = separate_vocals(mix, RATE, model)                       # (channels, samples)
    b = separate_vocals(mix.T.copy(), RATE, model)               # (samples, channels)
    pcm = np.round(mix.T * 32767).astype(np.int16)
    c = separate_vocals(pcm, RATE, model)
    assert np.array_equal(a, b)
    np.testing.assert_allclose(c, a, atol=1e-3)
    assert len(separate_vocals(np.zeros(0, np.float32), RATE, model)) == 0
    with pytest.raises(ValueError, match="sample_rate"):
        separate_vocals(mix, 0, model)
    # A rate no recording has is refused before the resampler sizes anything by it.
    with pytest.raises(ValueError, match="at most 768000"):
        separate_vocals(mix, 10**12, model)
    with pytest.raises(ValueError, match="output_rate must be 4000 to 768000"):
        separate_vocals(mix, RATE, model, output_rate=10**9)


def test_bag_weights_and_unused_models(model):
    """A bag (htdemucs_ft style) gives the weighted vocals demucs gives; a model weighing 0 on
    the vocals is not run at all."""
    other = tiny_htdemucs(seed=7)
    unused = tiny_htdemucs(seed=8)
    calls = []
    unused.register_forward_hook(lambda *_: calls.append(1))
    bag = BagOfModels([model, other, unused],
                      weights=[[1, 1, 1, 0.25], [1, 1, 1, 0.75], [1, 1, 1, 0.0]])
    mix = noise(2.3, seed=6)
    vocals = separate_vocals(mix, RATE, bag, output_rate=None, mono=False, block_seconds=0.4)
    calls.clear()  # the reference runs every model
    np.testing.assert_allclose(vocals.T, whole_song(bag, mix), rtol=0, atol=1e-6)
    assert calls  # apply_model did run it; separate_vocals (above) did not need to
    calls.clear()
    separate_vocals(mix, RATE, bag)
    assert not calls


def test_separate_file_streams_the_file(model, tmp_path):
    mix = noise(3.4, rate=22050, seed=9)
    path = tmp_path / "song.wav"
    sf.write(path, mix.T, 22050, subtype="FLOAT")
    from_file = separate_file(path, model, block_seconds=0.3)
    from_array = separate_vocals(mix, 22050, model)
    assert np.array_equal(from_file, from_array)
    assert len(from_file) == round(mix.shape[1] * 16000 / 22050)
    with pytest.raises(ValueError, match="no such audio file"):
        separate_file(tmp_path / "missing.wav", model)


def test_progress_bar_counts_windows(model):
    bars = []

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    separate_vocals(noise(4.0), RATE, model, progress=Bar)
    assert bars[0].n == bars[0].total == len(range(0, 4 * RATE, int(0.75 * RATE)))
    assert bars[0].closed


def test_models_that_cannot_separate_vocals_are_refused(model):
    with pytest.raises(SeparationModelError, match="no 'vocals' source"):
        separate_vocals(noise(1.0), RATE, tiny_htdemucs(sources=["drums", "bass", "other"]))
    with pytest.raises(SeparationModelError, match="no 'vocals' source"):
        load_separation_model(tiny_htdemucs(sources=["drums", "bass"]))
    assert load_separation_model(model) is model
    with pytest.raises(ValueError, match="segment_seconds"):
        separate_vocals(noise(1.0), RATE, model, segment_seconds=2.0)


# ------------------------------------------------------------------------------ weights

@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """demucs' caches pointed at empty folders; every network connection fails."""
    torch_home, hf_cache = tmp_path / "torch", tmp_path / "hf"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise OSError("network access disabled in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    import demucs.pretrained

    def no_download(*args, **kwargs):
        raise AssertionError("demucs' downloader must not be called")

    monkeypatch.setattr(demucs.pretrained, "get_model", no_download)
    return torch_home, hf_cache


def test_offline_without_cached_weights_says_what_to_download(empty_caches):
    torch_home, hf_cache = empty_caches
    expected_path = torch_home / "hub" / "checkpoints" / "955717e8-8726e21a.th"
    for call in (check_separation_available, load_separation_model):
        with pytest.raises(SeparationModelUnavailable) as err:
            call()
        assert isinstance(err.value, FileNotFoundError)
        message = str(err.value)
        assert "'htdemucs'" in message and "HF_HUB_OFFLINE" in message
        assert HTDEMUCS_URL in message
        assert str(expected_path) in message
        assert "--separation-model PATH" in message
    assert not torch_home.exists() and not hf_cache.exists()  # nothing downloaded or created
    files = sep.pretrained_weight_files()
    assert [(f.url, f.cache_path) for f in files] == [(HTDEMUCS_URL, expected_path)]


def test_no_network_without_cached_weights(empty_caches, monkeypatch):
    """Not marked offline, but nothing answers: the same message, saying why."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(SeparationModelUnavailable, match="no network access") as err:
        check_separation_available()
    assert HTDEMUCS_URL in str(err.value)


def test_cached_weights_load_offline(empty_caches, model, monkeypatch):
    """A file where demucs' loader caches it (torch hub checkpoints) is loaded without network,
    its checksum checked; a damaged one is reported."""
    torch_home, _ = empty_caches
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    path, checksum = save_th(model, checkpoints, sig="955717e8")
    monkeypatch.setattr(sep, "_remote_files",
                        lambda: {"955717e8": (f"hybrid_transformer/{path.name}", checksum)})
    assert str(path) in check_separation_available()
    loaded = load_separation_model()
    assert isinstance(loaded, BagOfModels) and isinstance(loaded.models[0], HTDemucs)
    mix = noise(1.5)
    np.testing.assert_allclose(separate_vocals(mix, RATE, loaded),
                               separate_vocals(mix, RATE, model), atol=2e-3)  # half precision
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(SeparationModelError, match="damaged"):
        load_separation_model()


def test_huggingface_cache_is_used_offline(empty_caches, model):
    """demucs >= 4.1 downloads named models from the HuggingFace hub first
    (adefossez/HTDemucs: htdemucs.yaml + <signature>.safetensors): found there, offline."""
    import json

    from safetensors.torch import save_file

    _, hf_cache = empty_caches
    repo = hf_cache / "models--adefossez--HTDemucs"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    (snapshot / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    args, kwargs = model._init_args_kwargs
    save_file(model.state_dict(), str(snapshot / "955717e8.safetensors"), metadata={
        "klass": "demucs.htdemucs.HTDemucs", "args": json.dumps(list(args)),
        "kwargs": json.dumps(dict(kwargs, segment={"_type": "fraction", "numerator": 1,
                                                   "denominator": 1}))})
    assert "cached" in check_separation_available()
    loaded = load_separation_model()
    mix = noise(1.2)
    np.testing.assert_allclose(separate_vocals(mix, RATE, loaded),
                               separate_vocals(mix, RATE, model), atol=1e-6)


def test_only_demucs_published_files_may_need_more_than_the_allowed_classes(
        empty_caches, model, monkeypatch):
    """A package whose pickle refers to another class (a Path here) is refused, unless it is the
    very file demucs publishes (its sha256 matches the published checksum), which is then loaded
    as demucs loads it."""
    from pathlib import PurePosixPath

    torch_home, _ = empty_caches
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    content = package(model)
    content["training_args"] = {"root": PurePosixPath("/data")}
    buf = io.BytesIO()
    torch.save(content, buf)
    checksum = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    official = checkpoints / f"955717e8-{checksum}.th"
    official.write_bytes(buf.getvalue())
    monkeypatch.setattr(sep, "_remote_files",
                        lambda: {"955717e8": (f"hybrid_transformer/{official.name}", checksum)})
    assert isinstance(load_separation_model().models[0], HTDemucs)
    copy = checkpoints.parent / "mine.th"
    copy.write_bytes(buf.getvalue())
    with pytest.raises(SeparationModelError, match="cannot be loaded safely"):
        load_separation_model(copy)


def test_separation_model_path(model, tmp_path):
    """--separation-model PATH: a .th file, a .safetensors file, a folder with a bag .yaml."""
    path, _ = save_th(model, tmp_path)
    mix = noise(2.0)
    expected = separate_vocals(mix, RATE, model)
    loaded = load_separation_model(str(path))
    assert isinstance(loaded, HTDemucs) and loaded.segment == Fraction(1)
    np.testing.assert_allclose(separate_vocals(mix, RATE, loaded), expected, atol=2e-3)

    # demucs' HuggingFace format: tensors + klass/args/kwargs as JSON metadata
    import json

    from safetensors.torch import save_file

    args, kwargs = model._init_args_kwargs
    meta_kwargs = dict(kwargs, segment={"_type": "fraction", "numerator": 1, "denominator": 1})
    st = tmp_path / "st" / "cafe0001.safetensors"
    st.parent.mkdir()
    save_file(model.state_dict(), str(st), metadata={
        "klass": "demucs.htdemucs.HTDemucs", "args": json.dumps(list(args)),
        "kwargs": json.dumps(meta_kwargs)})
    np.testing.assert_allclose(separate_vocals(mix, RATE, load_separation_model(st)), expected,
                               atol=1e-6)
    (st.parent / "mybag.yaml").write_text("models: ['cafe0001']\n")
    bag = load_separation_model(st.parent)
    assert isinstance(bag, BagOfModels)
    np.testing.assert_allclose(separate_vocals(mix, RATE, bag), expected, atol=1e-6)


PAYLOAD_RAN = []


def payload(*args):
    PAYLOAD_RAN.append(args)


class Payload:
    """What a malicious pickle does: call a function while it is loaded."""
    def __reduce__(self):
        return (payload, ("pwned",))


def test_unsafe_pickles_are_refused(model, tmp_path):
    bad = package(model)
    bad["training_args"] = Payload()
    path = tmp_path / "evil.th"
    torch.save(bad, path)
    with pytest.raises(SeparationModelError, match="cannot be loaded safely"):
        load_separation_model(path)
    assert not PAYLOAD_RAN
    wrong = tmp_path / "wrong.th"
    torch.save({"klass": HTDemucs, "args": [], "kwargs": {}}, wrong)
    with pytest.raises(SeparationModelError, match="not a demucs model package"):
        load_separation_model(wrong)


def test_missing_path_unknown_name_and_no_demucs(tmp_path, monkeypatch):
    with pytest.raises(SeparationModelUnavailable, match="no such file"):
        check_separation_available(tmp_path / "nope.th")
    with pytest.raises(SeparationModelError, match="unknown separation model"):
        check_separation_available("not_a_demucs_model")
    monkeypatch.setattr(sep, "demucs_available", lambda: False)
    with pytest.raises(SeparationNotInstalled, match="pip install demucs") as err:
        check_separation_available()
    assert isinstance(err.value, ImportError)


# ------------------------------------------------------------------------------ transcription

SR = 16000


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory):
    """A tiny transcription bundle (conv front-end, random head)."""
    from svt.inference.bundle import export_bundle
    from svt.models.head import TranscriptionHead
    from svt.models.ssl import SSLEncoder
    from svt.synthetic.tiny_models import build_tiny_ssl_model

    root = tmp_path_factory.mktemp("transcriber")
    source = build_tiny_ssl_model(root / "hf", num_layers=0, feat_extract_norm="layer",
                                  do_normalize=False)
    encoder = SSLEncoder(source=source, output_norm=False)
    torch.manual_seed(0)
    head = TranscriptionHead(encoder.output_size)
    with torch.no_grad():
        head.w.weight.mul_(4.0)
    settings = {"frame_rate": 49.8, "sample_rate": SR, "dur_threshold": 5,
                "onset_threshold": 0.4, "offset_threshold": 0.5}
    return export_bundle(root / "model", encoder, head, settings)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    """The tiny separator saved as a demucs `.th` package (`--separation-model PATH`)."""
    path, _ = save_th(model, tmp_path_factory.mktemp("separator"))
    return path


def sung_mix(path, seconds=4.0, rate=22050, seed=0):
    """A stereo mix: synthetic singing plus noise, written to `path`; returns `(n, 2)`."""
    from svt.synthetic.singing import generate_melody, render_singing

    rng = np.random.default_rng(seed)
    voice = render_singing(generate_melody(rng, seconds), rate, rng=rng, duration_s=seconds)
    mix = np.stack([voice, voice], 1) + 0.05 * rng.standard_normal((len(voice), 2))
    mix = mix.astype(np.float32)
    sf.write(path, mix, rate, subtype="FLOAT")
    return mix


def test_transcribe_separate_is_transcribing_the_separated_vocals(model, transcriber, tmp_path,
                                                                   monkeypatch):
    """`svt.transcribe(..., separate=True)`: the notes and frames of the separated vocals, for a
    file and for an array; a loaded separator is used as it is (not loaded again)."""
    import svt
    from svt.inference.transcribe import SilentInputWarning

    mix = sung_mix(tmp_path / "mix.wav")
    vocals = separate_file(tmp_path / "mix.wav", model)
    assert vocals.dtype == np.float32 and len(vocals) == round(len(mix) * SR / 22050)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SilentInputWarning)
        expected = svt.transcribe(vocals, SR, transcriber, return_frames=True)
        assert len(expected[0]) > 0
        loads = []
        monkeypatch.setattr(sep, "_load_local", lambda path: loads.append(path))
        got = svt.transcribe(tmp_path / "mix.wav", model=transcriber, separate=True,
                             separation_model=model, return_frames=True)
        from_array = svt.transcribe(mix, 22050, transcriber, separate=True,
                                    separation_model=model, return_frames=True)
    assert not loads
    for result in (got, from_array):
        np.testing.assert_array_equal(result[0], expected[0])
        for a, b in zip(result[1], expected[1]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(separate_vocals(mix, 22050, model), vocals)
    with pytest.raises(ValueError, match="separation_model is only used with separate=True"):
        svt.transcribe(vocals, SR, transcriber, separation_model=model)


def test_separation_with_an_audio_visual_model_keeps_the_video(model, transcriber, tmp_path):
    """Video + separate: the audio is separated, the lip video goes with it untouched."""
    import svt
    from svt.inference.bundle import load_bundle
    from svt.inference.transcribe import SilentInputWarning
    from svt.models.audio_visual import AudioVisualModel
    from svt.models.fusion import FusionRCA
    from svt.models.head import TranscriptionHead

    class MeanBrightness(torch.nn.Module):
        """A stand-in lip encoder: one feature per frame, its mean brightness."""
        def forward(self, videos, lens=None):
            return videos.mean(dim=(1, 3, 4))[..., None]

    audio = load_bundle(transcriber)
    size = audio.encoder.output_size
    torch.manual_seed(1)
    av = AudioVisualModel(audio.encoder, MeanBrightness(),
                          FusionRCA(d_model=size, nhead=1, d_ffn=16, video_size=1),
                          TranscriptionHead(size), dict(audio.settings)).eval()
    sung_mix(tmp_path / "mix.wav", seconds=3.0)
    vocals = separate_file(tmp_path / "mix.wav", model)
    frames = audio.encoder.num_frames(len(vocals))
    lips = np.random.default_rng(0).integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SilentInputWarning)
        expected = svt.transcribe(vocals, SR, av, video=lips, return_frames=True)
        got = svt.transcribe(tmp_path / "mix.wav", model=av, video=lips, separate=True,
                             separation_model=model, return_frames=True)
        no_video = svt.transcribe(vocals, SR, av, video=np.zeros_like(lips), return_frames=True)
    for a, b in zip(got[1], expected[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(no_video[1][0], expected[1][0])  # the video was used


def test_cli_separate_writes_notes_and_vocals(model_file, transcriber, tmp_path, capsys):
    """`svt-transcribe mix.wav --separate --separation-model FILE --save-vocals`: the notes of the
    separated vocals and `mix.vocals.wav` (16 kHz mono, as long as the mix), both recorded as
    written; `mix.vocals.wav` follows the other outputs' overwrite and skip rules."""
    import svt
    from svt.cli.transcribe import main
    from svt.inference.files import RECORD_FILE, read_record
    from svt.inference.transcribe import SilentInputWarning
    from svt.notes.formats import read_notes

    mix = sung_mix(tmp_path / "mix.wav")
    out = tmp_path / "out"
    args = [str(tmp_path / "mix.wav"), "--model", str(transcriber), "--separate",
            "--separation-model", str(model_file), "--device", "cpu"]
    assert main([*args, "--save-vocals", "--out-dir", str(out), "--plot"]) == 0
    captured = capsys.readouterr()
    assert f"vocal separation: Demucs model from {model_file}" in captured.out
    assert "1 of 1 file(s) transcribed" in captured.out
    info = sf.info(out / "mix.vocals.wav")
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert info.frames == round(len(mix) * SR / 22050)
    assert {"mix.json", "mix.csv", "mix.mid", "mix.png", "mix.vocals.wav"} <= read_record(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [RECORD_FILE, "mix.json", "mix.csv", "mix.mid", "mix.png", "mix.vocals.wav"])
    vocals = separate_file(tmp_path / "mix.wav", load_separation_model(model_file))
    written, _ = sf.read(out / "mix.vocals.wav", dtype="float32")
    np.testing.assert_allclose(written, vocals, atol=1 / 32768 + 1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SilentInputWarning)
        expected = svt.transcribe(vocals, SR, transcriber)
    assert len(expected) > 0
    np.testing.assert_allclose(read_notes(out / "mix.json"), expected, atol=1e-6)

    # --skip-existing counts the vocals among the outputs; a vocals file svt did not write is
    # not replaced without --overwrite (refused before any work).
    assert main([*args, "--save-vocals", "--out-dir", str(out), "--plot",
                 "--skip-existing"]) == 0
    assert "1 of 1 file(s) already have their outputs" in capsys.readouterr().out
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mix.vocals.wav").write_bytes(b"my own take")
    assert main([*args, "--save-vocals", "--out-dir", str(mine)]) == 2
    assert "would replace files that svt-transcribe did not write" in capsys.readouterr().err
    assert (mine / "mix.vocals.wav").read_bytes() == b"my own take"
    assert not (mine / "mix.json").exists()
    # Without --save-vocals no vocals are written.
    assert main([*args, "--out-dir", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "mix.vocals.wav").exists()


def test_transcribe_files_loads_the_separator_once(model_file, transcriber, tmp_path,
                                                   monkeypatch):
    import svt

    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        sung_mix(tmp_path / "in" / f"{name}.wav", seconds=1.5, seed=ord(name))
    loads = []
    original = sep.load_separation_model

    def counting(*args, **kwargs):
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(sep, "load_separation_model", counting)
    results = svt.transcribe_files(tmp_path / "in", tmp_path / "out", model=transcriber,
                                   separate=True, separation_model=model_file, save_vocals=True,
                                   device="cpu", report=lambda *a: None)
    assert [r.status for r in results] == ["written"] * 3
    assert len(loads) == 1
    assert results[0].outputs[-1] == tmp_path / "out" / "a.vocals.wav"
    from svt.inference.files import TranscribeFilesError

    with pytest.raises(TranscribeFilesError, match="save_vocals .* pass separate=True"):
        svt.transcribe_files(tmp_path / "in", tmp_path / "o2", save_vocals=True)


def test_offline_cli_stops_before_any_work(empty_caches, tmp_path, capsys, monkeypatch):
    """Offline, no cached weights: exit 2 with the one message naming the URL and where to put
    the file, before the transcriber or the separator loads or any input is read, nothing
    written. `svt.transcribe(separate=True)` raises the same before loading its model."""
    import svt
    from svt.cli.transcribe import main
    from svt.inference import files, transcribe

    torch_home, _ = empty_caches
    sf.write(tmp_path / "song.wav", noise(1.0, rate=16000).T, 16000)

    def never(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"{what} must not happen")
        return fail

    monkeypatch.setattr(files, "resolve_model", never("loading the transcriber"))
    monkeypatch.setattr(transcribe, "resolve_model", never("loading the transcriber"))
    monkeypatch.setattr(sep, "load_separation_model", never("loading the separator"))
    monkeypatch.setattr(sep, "separate_file", never("separating"))
    monkeypatch.setattr(files, "find_inputs", never("looking at the inputs"))
    out = tmp_path / "out"
    assert main([str(tmp_path / "song.wav"), "--separate", "--out-dir", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("svt-transcribe: error:") == 1 and "Traceback" not in err
    assert HTDEMUCS_URL in err
    assert str(torch_home / "hub" / "checkpoints" / "955717e8-8726e21a.th") in err
    assert "--separation-model PATH" in err and "HF_HUB_OFFLINE" in err
    assert not out.exists() and not torch_home.exists()
    with pytest.raises(SeparationModelUnavailable, match="955717e8-8726e21a.th"):
        svt.transcribe(tmp_path / "song.wav", separate=True)


# ------------------------------------------------------------------------------ dataset preparation

@pytest.fixture
def cached_htdemucs(empty_caches, model, monkeypatch):
    """The tiny model where demucs caches `htdemucs` (torch hub checkpoints), found offline."""
    torch_home, _ = empty_caches
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    path, checksum = save_th(model, checkpoints, sig="955717e8")
    monkeypatch.setattr(sep, "_remote_files",
                        lambda: {"955717e8": (f"hybrid_transformer/{path.name}", checksum)})
    from svt.datasets import separation as prep_separation

    prep_separation.release_separator()
    yield path
    prep_separation.release_separator()


def mir_with_mixtures(root, songs):
    """MIR-ST500 layout whose song folders hold only `Mixture.wav` (stereo, 44.1 kHz)."""
    import json

    annotations = {}
    for i, (song, split) in enumerate(songs.items()):
        folder = root / "wav16kHz" / split / song
        folder.mkdir(parents=True)
        sung_mix(folder / "Mixture.wav", seconds=3.0, rate=44100, seed=i)
        annotations[song] = [[0.2, 0.7, 60], [1.2, 1.7, 62]]
    (root / "Annotations.json").write_text(json.dumps(annotations))
    return root


def test_preparation_separates_mixtures_deterministically_loading_once(cached_htdemucs,
                                                                       tmp_path, monkeypatch):
    """MIR-ST500 `--separate`: each mixture's vocals are `separate_file`'s, written at 16 kHz;
    the model is loaded once for all songs; separating again gives the same file."""
    from svt.datasets import separation as prep_separation
    from svt.datasets.mir_st500 import prepare_mir_st500

    data = mir_with_mixtures(tmp_path / "MIR", {"1": "train", "2": "train", "7": "test"})
    loads = []
    original = sep.load_separation_model
    monkeypatch.setattr(sep, "load_separation_model",
                        lambda *a, **k: loads.append(a) or original(*a, **k))
    prepare_mir_st500(data, tmp_path / "prep", num_valid=1, separate=True, progress=False)
    assert len(loads) == 1
    separator = original(device="cpu")
    for song, split in (("1", "train"), ("7", "test")):
        written, rate = sf.read(tmp_path / "prep" / "audio16k" / "mir_st500" / f"{song}.wav",
                                dtype="float32")
        expected = separate_file(data / "wav16kHz" / split / song / "Mixture.wav", separator)
        assert rate == SR and written.shape == expected.shape == (3 * SR,)
        np.testing.assert_allclose(written, expected, atol=1 / 32768 + 1e-7)
    mixture = data / "wav16kHz" / "test" / "7" / "Mixture.wav"
    prep_separation.separate_vocals(mixture, tmp_path / "again1.wav")
    prep_separation.separate_vocals(mixture, tmp_path / "again2.wav")
    assert (tmp_path / "again1.wav").read_bytes() == (tmp_path / "again2.wav").read_bytes()
    assert len(loads) == 1  # still the model loaded for the preparation
    from svt.data.utterances import PrepareError

    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(PrepareError, match="cannot read the mixture: .*bad.wav"):
        prep_separation.separate_vocals(tmp_path / "bad.wav", tmp_path / "v.wav", device="cpu")


def test_preparation_offline_without_weights_stops_before_any_work(empty_caches, tmp_path):
    from svt.data.utterances import PrepareError
    from svt.datasets.mir_st500 import prepare_mir_st500

    data = mir_with_mixtures(tmp_path / "MIR", {"1": "train", "2": "train", "7": "test"})
    with pytest.raises(PrepareError, match=r"mir_st500: 3 song\(s\) have only a mixture "
                                           r"\(1, 2, 7\) to separate, but .*HF_HUB_OFFLINE") as err:
        prepare_mir_st500(data, tmp_path / "prep", num_valid=1, separate=True, progress=False)
    assert HTDEMUCS_URL in str(err.value)
    assert not (tmp_path / "prep").exists()
