import pytest

from lokirl.core.pipeline_config import load_pipeline, pipeline_from_dict

TINY = {
    "name": "tiny",
    "slo_ms": 100,
    "tasks": [
        {
            "name": "detect",
            "children": ["classify"],
            "variants": [
                {
                    "name": "d_big",
                    "accuracy": 100,
                    "latency_ms": {"gpu": {1: 10.0}},
                    "branching": {"classify": 1.0},
                },
                {
                    "name": "d_small",
                    "accuracy": 50,
                    "latency_ms": {"gpu": {1: 5.0}},
                    "branching": {"classify": 1.0},
                },
            ],
        },
        {
            "name": "classify",
            "variants": [
                {"name": "c_big", "accuracy": 100, "latency_ms": {"gpu": {1: 10.0}}},
                {"name": "c_small", "accuracy": 80, "latency_ms": {"gpu": {1: 5.0}}},
            ],
        },
    ],
}


@pytest.fixture
def tiny():
    """detect -> classify; big variants serve 100/s, small ones 200/s, one batch size."""
    return pipeline_from_dict(TINY, source="tiny.yaml")


@pytest.fixture(scope="session")
def traffic():
    return load_pipeline("traffic_analysis")
