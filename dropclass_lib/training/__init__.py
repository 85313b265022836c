"""Training speaker-embedding extractors: configuration, data, sampling, DropClass, the trainer.

See :mod:`dropclass_lib.training.trainer` for the entry point and the API DropAdapt uses.
"""
