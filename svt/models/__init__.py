"""Networks: the encoder interface (`encoder.FrameEncoder`), SSL speech encoders, the AV-HuBERT
visual encoder, the frozen-pitch-network encoder, the frame heads and loss, the RCA fusion, and
the audio-visual model.

Encoders and heads register themselves where they are defined: a subclass of `FrameEncoder` that
sets `encoder_type`, or of `FrameHead` that sets `head_type`, is registered under that name when
its class statement runs, and bundles name it so. `import svt.models` imports none of the
architectures (it stays light); a registry lookup of a name not registered yet first imports every
module of this package (`import_architectures`), so a new architecture module put here is found
with no edit elsewhere, and one defined outside `svt` is found once its module has been imported.
"""
import importlib
import pkgutil


def import_architectures() -> list[str]:
    """Import every module of `svt.models`, which registers the encoders and heads they define;
    returns the modules' names. The registries call it on a miss (`FrameEncoder.for_type`,
    `FrameHead.build`), so calling it directly is never needed."""
    names = sorted(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__))
    for name in names:
        importlib.import_module(name)
    return names


class Registry:
    """Classes by the name they give themselves in `attribute` (`encoder_type`, `head_type`): the
    names bundles record. A class is registered when it sets the name itself (a subclass that
    inherits its parent's name is not, so it never takes the parent's place); another class
    taking a registered name is refused (TypeError) rather than shadowing it."""

    def __init__(self, kind: str, attribute: str):
        self.kind, self.attribute = kind, attribute
        self.classes: dict[str, type] = {}

    def register(self, cls: type) -> None:
        name = cls.__dict__.get(self.attribute)
        if not name:
            return
        known = self.classes.get(name)
        if known is not None and _qualified_name(known) != _qualified_name(cls):
            raise TypeError(f"{_qualified_name(cls)}: {self.attribute} {name!r} is already "
                            f"{_qualified_name(known)}'s; give the class a name of its own")
        self.classes[name] = cls  # the same class again (a module reloaded): its newest copy

    def get(self, name: str) -> type:
        """The class registered as `name`, importing the built-in architectures first if it is
        not registered yet; KeyError (naming the known ones) when there is none."""
        if name not in self.classes:
            import_architectures()
        try:
            return self.classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} type {name!r}; known: {self.names()}") from None

    def names(self) -> list[str]:
        """Every registered name, the built-in architectures' included."""
        import_architectures()
        return sorted(self.classes)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
