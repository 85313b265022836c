"""DropClass / DropAdapt speaker-recognition toolkit: the library behind steps/ and utils/."""

__version__ = "0.1.0"
