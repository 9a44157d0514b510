"""A SpeechBrain `Checkpointer` whose listed checkpoints are complete, so that a run killed while
saving resumes from the last complete checkpoint instead of crashing on a half-written one.

SpeechBrain writes `CKPT+<time>/CKPT.yaml` first and the recoverables' `.ckpt` files after it; a
kill in between (a scheduler's time limit, Ctrl-C, a full disk) leaves a folder that SpeechBrain
lists as the newest checkpoint, and resuming loads its missing or truncated files and fails.

`CompleteCheckpointer` (used by every recipe YAML):

* saves each checkpoint into `.saving-CKPT+<time>` (a name SpeechBrain never lists: it lists
  folders starting with `CKPT`) and renames it into place once every file is written, so a kill
  leaves at most a staging folder, removed by the next save;
* skips, when listing, folders whose `CKPT.yaml` is unreadable or that lack a file of a
  recoverable or hold one that is empty or a truncated zip container (torch.save's format: its
  directory is at the end, so opening it is a cheap check), or a `brain.ckpt` that is not the
  YAML mapping SpeechBrain reads back (truncated), with a warning naming the folder
  (left in place: it may be a checkpoint of another configuration the user wants back);
* turns a load that still fails into a `CheckpointLoadError` naming the folder and the remedy.
"""
from __future__ import annotations

import logging
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import yaml
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    get_default_hook,
)
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process

from svt.errors import SvtUserError

logger = logging.getLogger(__name__)

#: Prefix of the folder a checkpoint is written in before it is renamed into place.
STAGING_PREFIX = ".saving-"
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointLoadError(SvtUserError, RuntimeError):
    """A listed checkpoint that cannot be loaded; the message names its folder."""


class CompleteCheckpointer(Checkpointer):
    """SpeechBrain's Checkpointer with atomic saves and incomplete checkpoints skipped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reported: set[Path] = set()  # incomplete folders already warned about

    # ------------------------------------------------------------------------------ saving
    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None,  # noqa: B006 (as SpeechBrain)
                        verbosity=logging.INFO):
        """As SpeechBrain's, but written into a staging folder renamed into place at the end."""
        staging = final = saved_meta = None
        if if_main_process():
            self._remove_staging_folders()
            final = (self._new_checkpoint_dirpath() if name is None
                     else self._custom_checkpoint_dirpath(name))
            staging = final.with_name(STAGING_PREFIX + final.name)
            staging.mkdir(parents=True)
            saved_meta = self._save_checkpoint_metafile(staging / METAFNAME, meta, end_of_epoch)
        staging = ddp_broadcast(staging, src=0)
        try:
            for recoverable, obj in self.recoverables.items():
                hook = self.custom_save_hooks.get(recoverable) or get_default_hook(
                    obj, DEFAULT_SAVE_HOOKS)
                if hook is None:
                    raise RuntimeError(f"don't know how to save {type(obj)} ({recoverable!r}); "
                                       "register a default hook or add a custom hook for it")
                hook(obj, staging / f"{recoverable}{PARAMFILE_EXT}")
        except BaseException:
            if if_main_process():
                shutil.rmtree(staging, ignore_errors=True)
            raise
        ddp_barrier()  # every process has written its files before the folder is published
        if not if_main_process():
            return None
        if final.exists():  # a custom name saved again: replace the old folder
            old = final.with_name(STAGING_PREFIX + final.name + ".old")
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
        kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
        logger.log(verbosity, "Saved an %s checkpoint in %s", kind, final)
        return Checkpoint(final, saved_meta,
                          {r: final / f"{r}{PARAMFILE_EXT}" for r in self.recoverables})

    def _remove_staging_folders(self):
        """Staging folders left by a save that was killed: never complete, never listed."""
        for folder in self.checkpoints_dir.glob(f"{STAGING_PREFIX}{CKPT_PREFIX}*"):
            logger.info("removing %s, left by an interrupted checkpoint save", folder)
            shutil.rmtree(folder, ignore_errors=True)

    # ----------------------------------------------------------------------------- listing
    def _list_checkpoint_dirs(self):
        complete = []
        for folder in super()._list_checkpoint_dirs():
            problem = self.incompleteness(folder)
            if problem is None:
                complete.append(folder)
            elif folder not in self._reported and if_main_process():
                self._reported.add(folder)
                logger.warning("skipping the checkpoint %s: %s (an interrupted save, or a "
                               "checkpoint of another configuration); training resumes from "
                               "the newest complete checkpoint. Delete the folder once you no "
                               "longer need it", folder, problem)
        return complete

    def incompleteness(self, folder) -> str | None:
        """What makes the checkpoint `folder` unusable for the current recoverables, or None."""
        folder = Path(folder)
        try:
            meta = yaml.safe_load((folder / METAFNAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return f"{METAFNAME} is unreadable ({type(err).__name__})"
        if not isinstance(meta, dict) or "end-of-epoch" not in meta:
            return f"{METAFNAME} is incomplete"
        for recoverable in self.recoverables:
            if (self.allow_partial_load or self.optional_recoverables.get(recoverable)
                    or "dataloader" in recoverable):
                continue  # SpeechBrain loads these without their file
            problem = _damage(folder / f"{recoverable}{PARAMFILE_EXT}",
                              BRAIN_KEYS if recoverable == "brain" else None)
            if problem:
                return problem
        return None

    # ----------------------------------------------------------------------------- loading
    def load_checkpoint(self, checkpoint):
        try:
            super().load_checkpoint(checkpoint)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError,
                zipfile.BadZipFile, yaml.YAMLError, KeyError, TypeError) as err:
            # KeyError, TypeError: a text file (SpeechBrain's brain.ckpt, YAML) whose content is
            # not the mapping its loader indexes.
            detail = " ".join(str(err).split()).rstrip(".")  # torch's are multi-line
            damage = self.incompleteness(checkpoint.path)
            if damage:  # names the file
                detail = f"{damage}; {detail}"
            raise CheckpointLoadError(
                f"cannot load the checkpoint {checkpoint.path} ({type(err).__name__}: {detail}). "
                "If the folder is damaged, delete it to resume from the checkpoint before it; if "
                "the model or its options changed since it was saved, train into a new "
                "output_folder") from err


#: What SpeechBrain's Brain writes in its `brain.ckpt` (a small YAML mapping) and reads back.
BRAIN_KEYS = ("step", "avg_train_loss")
#: Text checkpoint files larger than this are not parsed by the cheap check.
_MAX_TEXT_CHECK = 1 << 16


def _damage(path: Path, required_keys=None) -> str | None:
    """Why the saved file `path` cannot be whole, or None (a cheap check, nothing is loaded):
    missing, empty, a truncated zip container (torch.save), or, with `required_keys`, a YAML
    text file (SpeechBrain's `brain.ckpt`) that is not a mapping holding those keys (a truncated
    one failed with a TypeError or KeyError inside SpeechBrain)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"no {path.name}"
    if size == 0:
        return f"{path.name} is empty"
    with open(path, "rb") as f:
        is_zip = f.read(4) == _ZIP_MAGIC
    if is_zip:
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError):
            return f"{path.name} is truncated or damaged"
    elif required_keys and size <= _MAX_TEXT_CHECK:
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return f"{path.name} is truncated or damaged ({type(err).__name__})"
        missing = [k for k in required_keys
                   if not isinstance(content, dict) or k not in content]
        if missing:
            return f"{path.name} is truncated or damaged (no {', '.join(missing)})"
    return None
