"""Kaldi data directories: loading, validation and the operations of Kaldi's ``utils/``."""

from dropclass_lib.datadir.core import (KNOWN_FILES, UTT_TABLES, DataDir, read_spk2utt, read_utt_list,
                                        read_utt_table, spk2utt_to_utt2spk, utt2spk_to_spk2utt)
from dropclass_lib.datadir.ops import (combine, copy_data_dir, filter_data_dir, fix_data_dir, subset_first,
                                       subset_per_speaker, subset_random, subset_speakers, subset_utts)
from dropclass_lib.datadir.validate import validate_data_dir

__all__ = [
    "KNOWN_FILES", "UTT_TABLES", "DataDir", "read_spk2utt", "read_utt_list", "read_utt_table",
    "spk2utt_to_utt2spk", "utt2spk_to_spk2utt", "combine", "copy_data_dir", "filter_data_dir",
    "fix_data_dir", "subset_first", "subset_per_speaker", "subset_random", "subset_speakers",
    "subset_utts", "validate_data_dir",
]
