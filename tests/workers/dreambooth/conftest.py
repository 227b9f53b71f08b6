import pytest

from workers.dreambooth.subjects import EVAL_SUBJECTS, subject_photos
from workers.engine.tiny_model import write_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture
def photos(tmp_path):
    return subject_photos(EVAL_SUBJECTS[0], 3, tmp_path / "photos")
