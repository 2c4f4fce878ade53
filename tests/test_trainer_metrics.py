"""trainer.metrics on hand-computed cases."""
import pytest

from trainer import metrics


def test_compute_metrics_hand_computed():
    true = ["AB12", "O0O0", "XYZ", "QQQQ"]
    pred = ["AB12", "0000", "XY", "QQQQQ"]
    result = metrics.compute_metrics(true, pred)
    # Exact: only "AB12". Characters: 4 + 2 (O->0 twice) + 2 (Z missing) + 4 (extra Q ignored) of 15.
    assert result["num_examples"] == 4
    assert result["captcha_acc"] == pytest.approx(1 / 4)
    assert result["char_acc"] == pytest.approx(12 / 15)
    # Position 0: A,O(wrong),X,Q -> 3/4; 1: B,0,Y,Q -> 4/4; 2: 1,O(wrong),Z(missing),Q -> 2/4; 3: 2,0,Q -> 3/3.
    assert result["position_acc"] == pytest.approx([3 / 4, 4 / 4, 2 / 4, 3 / 3])
    assert result["confusions"] == [{"true": "O", "pred": "0", "count": 2}, {"true": "Z", "pred": "", "count": 1}]
    # Length 3: "XYZ" wrong -> 0/1; length 4: "AB12" right, "O0O0" and "QQQQ" (extra Q) wrong -> 1/3.
    assert result["length_acc"] == [{"length": 3, "num_examples": 1, "captcha_acc": 0.0},
                                    {"length": 4, "num_examples": 3, "captcha_acc": pytest.approx(1 / 3)}]


def test_compute_metrics_rejects_unequal_lists():
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        metrics.compute_metrics(["AB", "CD"], ["AB"])


def test_format_table_lists_metrics_and_confusions():
    table = metrics.format_table(metrics.compute_metrics(["O1"], ["0"]))
    assert "captcha acc     0.0000" in table
    assert "'O' -> '0': 1" in table
    assert "'1' -> (missing): 1" in table
    table = metrics.format_table(metrics.compute_metrics(["AB", "ABC", "ABD"], ["AB", "ABC", "AB"]))
    assert "length 2 acc    1.0000 (1 examples)" in table
    assert "length 3 acc    0.5000 (2 examples)" in table
