"""The pipeline model's shared rules."""

from lokirl.core.pipeline import Pipeline, Task, Variant


def test_emits_names_every_child_with_one_where_the_profile_is_silent():
    det = Variant("det-a", "det", 90.0, {"gpu": {1: 5.0}}, 0.1, {"cls": 2.5})
    bare = Variant("det-b", "det", 80.0, {"gpu": {1: 3.0}}, 0.1)
    cls = Variant("cls-a", "cls", 95.0, {"gpu": {1: 2.0}}, 0.1)
    ocr = Variant("ocr-a", "ocr", 95.0, {"gpu": {1: 2.0}}, 0.1)
    p = Pipeline(
        "p",
        (
            Task("det", (det, bare), ("cls", "ocr")),
            Task("cls", (cls,), ()),
            Task("ocr", (ocr,), ()),
        ),
        slo_ms=100.0,
    )
    assert p.emits("det-a") == {"cls": 2.5, "ocr": 1.0}
    assert p.emits("det-b") == {"cls": 1.0, "ocr": 1.0}
    assert p.emits("cls-a") == {}
