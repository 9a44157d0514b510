"""The one base class of user errors, so that any module's error about the user's input is
printed as one line (`<recipe>: error: ...`, `error: ...`) instead of a traceback.

A module raising an error about what the user gave (an option, a data folder, a file, a model)
defines its class as `class MyError(SvtUserError, ValueError)` (or `FileNotFoundError`, ...:
keep the built-in base that says what kind of fault it is, so `except ValueError` still catches
it) and writes a message that names the option or file and says what to do. Nothing else needs
editing: the recipes' `run_recipe` and the prepare scripts' `run_cli` catch `SvtUserError`.
Anything else raised is a bug and keeps its traceback.

Kept free of imports, so every module (the torch-free `svt.notes` included) can use it.
"""


class SvtUserError(Exception):
    """An error about the user's input, files or options (not a bug): its message names the option
    or file and the remedy, and the command-line tools and recipes print it as one line."""
