"""Repeat-detection elimination on hand-made boxes (pure numpy, no models)."""

from __future__ import annotations

import random

from models_ml.repeats import BoxRecord, RepeatParams, find_repeats

P3 = RepeatParams(min_occurrences=3)


def box(i: int, media: str, x: float = 0.1, conf: float = 0.5, w: float = 0.1) -> BoxRecord:
    return BoxRecord(f"d{i:03d}", media, x, 0.2, w, 0.1, conf)


def test_a_box_in_three_images_is_flagged_a_moving_one_is_not() -> None:
    rock = [box(i, f"m{i}", x=0.1 + 0.001 * i) for i in range(3)]  # IoU > 0.9 with the first
    animal = [box(10 + i, f"m{i}", x=0.5 + 0.05 * i) for i in range(3)]  # moves
    flags = find_repeats(rock + animal, P3, key="site/cam")
    assert sorted(f.detection_id for f in flags) == ["d000", "d001", "d002"]
    assert {f.occurrences for f in flags} == {3}
    assert len({f.cluster_id for f in flags}) == 1
    assert "3 images" in flags[0].detail


def test_occurrences_count_distinct_images_not_boxes() -> None:
    same_image = [box(i, "m0") for i in range(5)]
    assert find_repeats(same_image, P3) == []
    assert len(find_repeats([*same_image, box(9, "m1"), box(8, "m2")], P3)) == 7


def test_big_and_low_confidence_boxes_are_not_candidates() -> None:
    big = [box(i, f"m{i}", w=0.9) for i in range(4)]  # 0.9 x 0.1 = 0.09 area: candidate
    assert len(find_repeats(big, P3)) == 4
    huge = [BoxRecord(f"h{i}", f"m{i}", 0, 0, 0.5, 0.5, 0.9) for i in range(4)]  # 0.25 > 0.2
    assert find_repeats(huge, P3) == []
    faint = [box(i, f"m{i}", conf=0.05) for i in range(4)]
    assert find_repeats(faint, P3) == []


def test_threshold_n_and_the_default_of_twenty() -> None:
    boxes = [box(i, f"m{i}") for i in range(19)]
    assert find_repeats(boxes) == []
    assert len(find_repeats([*boxes, box(99, "m99")])) == 20


def test_result_does_not_depend_on_the_order_boxes_arrive_in() -> None:
    boxes = [box(i, f"m{i % 7}", x=0.1 + 0.002 * (i % 5)) for i in range(30)]
    boxes += [box(100 + i, f"m{i}", x=0.6) for i in range(2)]
    first = sorted((f.detection_id, f.cluster_id) for f in find_repeats(boxes, P3, key="k"))
    random.Random(1).shuffle(boxes)  # noqa: S311
    again = sorted((f.detection_id, f.cluster_id) for f in find_repeats(boxes, P3, key="k"))
    assert first == again and len(first) == 30
