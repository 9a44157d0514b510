"""Fabricated fairseq AV-HuBERT checkpoints: files structured like the official ones, for tests and
demos that cannot download the real (gated, gigabyte-sized) files.

`save_fairseq_style_checkpoint` writes a model's weights the way fairseq saves them (`cfg`,
`model`, `task_state` with a pickled `Dictionary`, pre-training-only tensors, optionally the
fine-tuned seq2seq form or torch's legacy format), so `svt.models.avhubert.load_fairseq_checkpoint`
and its safety checks are exercised on the real structure. The fairseq objects are written as
`svt.models.avhubert.StandIn`s pickled under fairseq's own class names.
"""
from __future__ import annotations

import os
import pickle
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from svt.models.avhubert import (
    FINETUNED_PREFIX,
    AVHubertConfig,
    StandIn,
    stand_in_class,
)


# ==================================================================================================
# Writing fairseq-style checkpoints (tests, demos: a stand-in for the official file)
# ==================================================================================================
class _StandInPickler(pickle._Pickler):  # noqa: SLF001 - the pure-Python pickler allows this
    """Pickler that writes each `StandIn` class under its original dotted name (e.g.
    `fairseq.data.dictionary.Dictionary`), which fairseq itself would then resolve to the real
    class.
    """

    def save_global(self, obj, name=None):
        if isinstance(obj, type) and issubclass(obj, StandIn):
            module, _, qualname = obj._pickle_name.rpartition(".")
            self.write(pickle.GLOBAL + module.encode() + b"\n" + qualname.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


_STAND_IN_PICKLE_MODULE = types.SimpleNamespace(__name__="svt_avhubert_pickle",
                                                Pickler=_StandInPickler, dump=pickle.dump,
                                                Unpickler=pickle.Unpickler, load=pickle.load)


def _fairseq_dictionary(symbols: Iterable[str]) -> StandIn:
    """A stand-in `fairseq.data.dictionary.Dictionary` with fairseq's attributes (4 specials)."""
    dictionary = stand_in_class("fairseq.data.dictionary.Dictionary")()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    words = specials + [str(s) for s in symbols]
    dictionary.__dict__.update(
        bos_word="<s>", unk_word="<unk>", pad_word="<pad>", eos_word="</s>", symbols=words,
        count=[1] * len(words), indices={word: i for i, word in enumerate(words)}, bos_index=0,
        pad_index=1, eos_index=2, unk_index=3, nspecial=4)
    return dictionary


def _fairseq_model_cfg(config: AVHubertConfig) -> dict:
    """`cfg['model']` as the released pre-training yamls give it (plus AVHubertConfig's fields)."""
    return {"_name": "av_hubert", "label_rate": 25, "input_modality": "image",
            "extractor_mode": "default", **config.to_dict(), "logit_temp": 0.1,
            "target_glu": False, "mask_length_audio": 10, "mask_prob_audio": 0.8,
            "mask_length_image": 5, "mask_prob_image": 0.3, "mask_selection": "static",
            "skip_masked": False, "skip_nomask": False, "resnet_weights": None,
            "sim_type": "cosine", "modality_dropout": 0.5, "audio_dropout": 0.5,
            "selection_type": "same_seq", "masking_type": "input", "decoder_embed_dim": 768}


def _fairseq_cfg(config: AVHubertConfig, num_clusters: int) -> dict:
    """A plain nested `cfg` dict with the sections of a fairseq >= 1.0 checkpoint."""
    return {
        "_name": None,
        "common": {"_name": None, "seed": 1337, "fp16": True, "log_interval": 200,
                   "user_dir": "/path/to/av_hubert/avhubert", "empty_cache_freq": 10000},
        "common_eval": {"_name": None, "path": None},
        "distributed_training": {"_name": None, "distributed_world_size": 32,
                                 "ddp_backend": "no_c10d"},
        "dataset": {"_name": None, "num_workers": 6, "max_tokens": 1000,
                    "validate_interval": 5},
        "optimization": {"_name": None, "max_update": 800000, "lr": [0.002],
                         "clip_norm": 10.0, "update_freq": [1]},
        "checkpoint": {"_name": None, "save_dir": "checkpoints", "save_interval_updates": 25000},
        "model": _fairseq_model_cfg(config),
        "task": {"_name": "av_hubert_pretraining", "data": "/path/to/data",
                 "label_dir": "/path/to/labels", "labels": ["km"], "label_rate": 25,
                 "sample_rate": 25, "max_sample_size": 2000, "min_sample_size": 5,
                 "pad_audio": False, "random_crop": True, "normalize": True,
                 "input_modality": "image", "image_aug": True, "modalities": ["video", "audio"],
                 "stack_order_audio": 4, "image_crop_size": 88, "image_mean": 0.421,
                 "image_std": 0.165, "max_trim_sample_size": 400,
                 "num_clusters_note": num_clusters},
        "criterion": {"_name": "av_hubert", "pred_masked_weight": 1.0, "pred_nomask_weight": 0.0,
                      "loss_weights": [10.0], "log_keys": []},
        "optimizer": {"_name": "adam", "adam_betas": "(0.9,0.98)", "adam_eps": 1e-06,
                      "weight_decay": 0.01, "lr": [0.002]},
        "lr_scheduler": {"_name": "polynomial_decay", "warmup_updates": 64000,
                         "total_num_update": 800000, "lr": [0.002]},
        "scoring": None, "bpe": None, "tokenizer": None,
    }


def save_fairseq_style_checkpoint(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
                                  config: AVHubertConfig | Mapping[str, Any] | None,
                                  path: str | os.PathLike, *, finetuned: bool = False,
                                  num_clusters: int = 500, pretraining_tensors: bool = True,
                                  legacy_format: bool = False, seed: int = 0) -> Path:
    """Write a file structured like a fairseq AV-HuBERT checkpoint (a stand-in for the real one).

    The dict has `args` (None), `cfg` (plain nested dict with `common`, `task`, `model`, ... as
    fairseq >= 1.0 saves it), `model` (the state dict), `criterion`, `optimizer_history`,
    `task_state` (`{'dictionaries': [Dictionary]}`, a stand-in pickled under fairseq's class name),
    and `extra_state` (with a numpy scalar, as training metadata can have).

    Args:
        model_or_state_dict: an `AVHubertVideoEncoder` or a state dict with its (fairseq) key names.
        config: its config (None: the model's). Written as `cfg['model']`.
        path: output file (parent folders created).
        finetuned: write it like a fine-tuned seq2seq checkpoint instead: keys prefixed
            `encoder.w2v_model.`, a small `decoder.*`, no `final_proj`, the pre-training config
            nested at `cfg['model']['w2v_args']`, plus a target dictionary and a tokenizer stand-in.
        num_clusters: clusters K of the pre-training labels (`label_embs_concat` has K + 4 rows).
        pretraining_tensors: add the tensors a real file has but the encoder drops (`DROPPED_KEYS`,
            random values) unless the state dict already has them.
        legacy_format: use torch's pre-1.6 (non-zip) serialisation.
        seed: RNG seed of the added random tensors.

    Returns:
        The path.
    """
    if isinstance(model_or_state_dict, nn.Module):
        state = model_or_state_dict.state_dict()
        config = config if config is not None else model_or_state_dict.config
    else:
        state = model_or_state_dict
    if config is None:
        raise ValueError("save_fairseq_style_checkpoint: a config is needed with a state dict")
    config = config if isinstance(config, AVHubertConfig) else AVHubertConfig(**dict(config))
    state = OrderedDict((name, tensor.detach().cpu()) for name, tensor in state.items())
    float_dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)

    if pretraining_tensors:
        generator = torch.Generator().manual_seed(seed)
        dim, final_dim = config.encoder_embed_dim, config.final_dim

        def rand(*shape):
            return (0.02 * torch.randn(*shape, generator=generator)).to(float_dtype)

        extra = OrderedDict([
            ("mask_emb", rand(config.audio_feat_dim)),
            ("label_embs_concat", rand(num_clusters + 4, final_dim)),
            ("feature_extractor_audio.proj.weight", rand(dim, config.audio_feat_dim)),
            ("feature_extractor_audio.proj.bias", rand(dim))])
        tail = OrderedDict([("final_proj.weight", rand(final_dim, dim)),
                            ("final_proj.bias", rand(final_dim))])
        # key order of a real file: top-level parameters and the audio front-end first
        state = OrderedDict([*((k, v) for k, v in extra.items() if k not in state),
                             *state.items(), *((k, v) for k, v in tail.items() if k not in state)])

    dictionary = _fairseq_dictionary(str(i) for i in range(num_clusters))
    cfg = _fairseq_cfg(config, num_clusters)
    task_state = {"dictionaries": [dictionary]}
    if finetuned:
        generator = torch.Generator().manual_seed(seed + 1)
        vocab = 8
        state = OrderedDict([(FINETUNED_PREFIX + k, v) for k, v in state.items()
                             if not k.startswith("final_proj.")])
        state["decoder.embed_tokens.weight"] = torch.randn(
            vocab, config.encoder_embed_dim, generator=generator).to(float_dtype)
        state["decoder.layer_norm.weight"] = torch.ones(config.encoder_embed_dim, dtype=float_dtype)
        pretrain_cfg = cfg
        cfg = {**pretrain_cfg,
               "model": {"_name": "av_hubert_seq2seq", "w2v_path": "/path/to/large_vox_iter5.pt",
                         "w2v_args": pretrain_cfg, "apply_mask": False, "dropout": config.dropout,
                         "attention_dropout": config.attention_dropout,
                         "activation_dropout": config.activation_dropout,
                         "dropout_input": config.dropout_input,
                         "layerdrop": config.encoder_layerdrop,
                         "feature_grad_mult": config.feature_grad_mult,
                         "freeze_finetune_updates": 0, "decoder_layers": 6},
               "task": {**pretrain_cfg["task"], "_name": "av_hubert_pretraining",
                        "labels": ["wrd"], "fine_tuning": True}}
        tokenizer = stand_in_class("fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE")()
        processor = stand_in_class("sentencepiece.SentencePieceProcessor")()
        processor.pickled_state = b"\x0a\x00fabricated-sentencepiece-model"
        tokenizer.__dict__.update(sentencepiece_model="/path/to/spm.model", sp=processor)
        task_state = {"dictionaries": [_fairseq_dictionary(["a", "b", "c", "d"])],
                      "target_dictionary": _fairseq_dictionary(["a", "b", "c", "d"]),
                      "s2s_tokenizer": tokenizer}
    import numpy as np

    checkpoint = {
        "args": None,
        "cfg": cfg,
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "AVHubertCriterion",
                               "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "task_state": task_state,
        "extra_state": {"metrics": {}, "previous_training_time": np.float64(0.0),
                        "train_iterator": {"version": 2, "epoch": 1, "iterations_in_epoch": 0,
                                           "shuffle": True},
                        "val_loss": None,
                        "svt_note": "fabricated by svt.synthetic.fairseq_checkpoints.save_fairseq_style_checkpoint"},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path, pickle_module=_STAND_IN_PICKLE_MODULE,
               _use_new_zipfile_serialization=not legacy_format)
    return path
