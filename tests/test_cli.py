import pytest

from lokirl.cli import join_negative_values, main


def test_a_negative_value_is_joined_to_its_option():
    argv = ["bench", "--load", "-1:2", "--seeds", "-1e3", "--json", "--window", "-inf:3"]
    assert join_negative_values(argv) == [
        "bench",
        "--load=-1:2",
        "--seeds=-1e3",
        "--json",
        "--window=-inf:3",
    ]
    # an option's own value, an option after an option, and everything after "--" stay
    same = ["simulate", "--trace", "a.csv", "--json", "--no-plots", "--", "--x", "-1:2"]
    assert join_negative_values(same) == same
    assert join_negative_values(["--x=-1:2", "-h"]) == ["--x=-1:2", "-h"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--trace", "step_600s", "--load", "-1:2"], "--load: -1:2: need 0 <= A <= B"),
        (["simulate", "--rescale", "-5:10", "--no-mlflow"], "--rescale: -5:10: need 0 <= A"),
    ],
)
def test_a_negative_range_reaches_the_options_own_check(capsys, argv, message):
    # argparse alone answers "expected one argument" for -1:2
    assert main(argv) == 2
    assert message in capsys.readouterr().err
