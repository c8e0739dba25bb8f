"""Data layer: dataset readers, vocabularies, pretrained embeddings and host-side batching.

files -> `Example` lists (readers) -> `Vocab` indices (vocab) -> padded NumPy batches (batching);
`embeddings` turns word2vec / GloVe files into an embedding matrix in a Vocab's order.
"""

from .batching import bucket_batches, char_batch, lm_segments, lm_stream, pad_batch
from .embeddings import (
    CoverageReport,
    build_matrix,
    load_glove,
    load_vectors,
    load_word2vec_binary,
    load_word2vec_text,
    sniff_format,
)
from .readers import (
    Example,
    check_labels,
    iter_lines,
    read_classification,
    read_conll,
    read_conllu,
    read_labelled_files,
    read_text,
)
from .vocab import PAD, UNK, Vocab

__all__ = [
    "PAD",
    "UNK",
    "CoverageReport",
    "Example",
    "Vocab",
    "bucket_batches",
    "build_matrix",
    "char_batch",
    "check_labels",
    "iter_lines",
    "lm_segments",
    "lm_stream",
    "load_glove",
    "load_vectors",
    "load_word2vec_binary",
    "load_word2vec_text",
    "pad_batch",
    "read_classification",
    "read_conll",
    "read_conllu",
    "read_labelled_files",
    "read_text",
    "sniff_format",
]
