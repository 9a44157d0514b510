"""The demos print the same numbers on any machine: they fix torch's thread count before any
work (the audio-visual stage's training is not bit-stable across thread counts)."""
import pytest
import torch

import svt.synthetic.singing
import svt.synthetic.tiny_models
from svt.demos import DEMO_TORCH_THREADS
from svt.demos import audio_visual, single_modality


class Stop(Exception):
    pass


@pytest.mark.parametrize("demo, builder", [
    (audio_visual, (svt.synthetic.singing, "make_corpus")),
    (single_modality, (svt.synthetic.tiny_models, "build_tiny_ssl_model")),
])
def test_demo_fixes_the_thread_count_before_any_work(demo, builder, monkeypatch, tmp_path):
    seen = []

    def first_work(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise Stop

    monkeypatch.setattr(*builder, first_work)
    monkeypatch.setattr(single_modality, "make_demo_corpus", first_work)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if DEMO_TORCH_THREADS != 1 else 3)
    try:
        with pytest.raises(Stop):
            demo.main(["--output", str(tmp_path / "demo")])
    finally:
        torch.set_num_threads(before)
    assert seen == [DEMO_TORCH_THREADS]
