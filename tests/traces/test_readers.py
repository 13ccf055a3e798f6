from pathlib import Path

import numpy as np
import pytest

from lokirl.errors import TraceError
from lokirl.traces import (
    ArrivalTrace,
    RateSeries,
    detect_format,
    load_trace,
    read_arrivals,
    read_rates,
    read_timestamps,
    write_arrivals,
    write_rates,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_arrival_file_ms_to_seconds_and_sorted(tmp_path):
    p = write(tmp_path, "a.txt", "6,1,300\n1500,1,300\n29,1,300\n\n")
    tr = read_arrivals(p)
    assert isinstance(tr, ArrivalTrace)
    np.testing.assert_allclose(tr.arrivals_s, [0.006, 0.029, 1.5])
    assert tr.name == "a"


def test_arrival_file_single_field(tmp_path):
    p = write(tmp_path, "a.txt", "0\n1000\n2000\n")
    assert load_trace(p).arrivals_s.tolist() == [0.0, 1.0, 2.0]


def test_arrival_file_bad_line_names_line(tmp_path):
    p = write(tmp_path, "a.txt", "1,1,300\n2,1,300\nxx,1,300\n")
    with pytest.raises(TraceError, match=r"a.txt: line 3: .*'xx'"):
        read_arrivals(p)


def test_arrival_file_negative(tmp_path):
    p = write(tmp_path, "a.txt", "1\n-5\n")
    with pytest.raises(TraceError, match="line 2"):
        read_arrivals(p)


def test_rate_csv_with_and_without_header(tmp_path):
    with_header = write(tmp_path, "r.csv", "time_s,qps\n0,10\n1,20\n2,30\n")
    without = write(tmp_path, "q.csv", "0,10\n1,20\n2,30\n")
    for p in (with_header, without):
        s = load_trace(p)
        assert isinstance(s, RateSeries)
        assert s.rates.tolist() == [10, 20, 30]
        assert s.bin_s == 1.0


def test_rate_csv_bin_width_from_spacing(tmp_path):
    s = read_rates(write(tmp_path, "r.csv", "0,10\n0.5,20\n1.0,30\n"))
    assert s.bin_s == 0.5
    assert s.expected_requests == pytest.approx(30.0)


@pytest.mark.parametrize(
    "body, match",
    [
        ("time_s,qps\n0,1\n1,-3\n", "line 3: qps '-3'"),
        ("time_s,qps\n0,1\n1,nan\n", "line 3: qps 'nan'"),
        ("time_s,qps\n0,1\n1,abc\n", "line 3: qps 'abc' is not a number"),
        ("time_s,qps\n0,1\n1,2\n5,3\n", "line 4: time_s is not evenly spaced"),
        ("time_s,qps\n", "header but no rows"),
    ],
)
def test_rate_csv_bad_input(tmp_path, body, match):
    with pytest.raises(TraceError, match=match):
        read_rates(write(tmp_path, "r.csv", body))


def test_timestamp_csv_iso_and_seconds(tmp_path):
    iso = write(
        tmp_path,
        "t.csv",
        "id,ts,user\n1,2024-01-01T00:00:01,a\n2,2024-01-01T00:00:00.5,b\n3,2024-01-01T00:00:03Z,c\n",
    )
    tr = load_trace(iso, column="ts")
    np.testing.assert_allclose(tr.arrivals_s, [0.0, 0.5, 2.5])
    secs = write(tmp_path, "s.csv", "when\n100.0\n101.5\n")
    assert load_trace(secs).arrivals_s.tolist() == [0.0, 1.5]


def test_naive_datetimes_are_utc_whatever_the_local_zone(tmp_path, monkeypatch):
    import time

    # 02:59:50 to 03:00:10 on the night Berlin's clocks went back: in local time a
    # one-hour gap would open; read as UTC it is 20 s on every machine.
    body = "".join(f"2024-10-27T{t}\n" for t in ("02:59:50", "03:00:00", "03:00:10"))
    p = write(tmp_path, "t.csv", "ts\n" + body)
    spans = []
    for zone in ("UTC", "Europe/Berlin", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        spans.append(load_trace(p).arrivals_s.tolist())
    monkeypatch.delenv("TZ")
    time.tzset()
    assert spans == [[0.0, 10.0, 20.0]] * 3


def test_timestamp_csv_unknown_column_lists_columns(tmp_path):
    p = write(tmp_path, "t.csv", "id,ts\n1,0\n")
    with pytest.raises(TraceError, match=r"no column 'time'.*\['id', 'ts'\]"):
        read_timestamps(p, column="time")
    with pytest.raises(TraceError, match="--column NAME"):
        load_trace(p)


def test_timestamp_csv_bad_value(tmp_path):
    p = write(tmp_path, "t.csv", "ts\n0\nyesterday\n")
    with pytest.raises(TraceError, match="line 3: ts='yesterday'"):
        read_timestamps(p, column="ts")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(TraceError, match="no such trace file"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="empty"):
        load_trace(write(tmp_path, "e.csv", "\n\n"))
    with pytest.raises(TraceError, match="unknown trace format"):
        load_trace(write(tmp_path, "x.csv", "0,1\n"), fmt="parquet")


def test_detect_format(tmp_path):
    assert detect_format(write(tmp_path, "a.txt", "6,1,300\n")) == "arrivals"
    assert detect_format(write(tmp_path, "b.txt", "6\n")) == "arrivals"
    assert detect_format(write(tmp_path, "c.csv", "0,5\n")) == "rates"
    assert detect_format(write(tmp_path, "d.csv", "time_s,qps\n0,5\n")) == "rates"
    assert detect_format(write(tmp_path, "e.csv", "ts,x\n0,5\n")) == "timestamps"


def test_write_read_round_trip(tmp_path):
    s = RateSeries(np.array([0.0, 1.25, 100.0, 7.5]), bin_s=2.0, name="x")
    back = read_rates(write_rates(s, tmp_path / "x.csv"))
    np.testing.assert_allclose(back.rates, s.rates)
    assert back.bin_s == 2.0
    tr = ArrivalTrace(np.array([0.001, 0.5, 2.25]))
    np.testing.assert_allclose(
        read_arrivals(write_arrivals(tr, tmp_path / "a.txt")).arrivals_s, tr.arrivals_s
    )


def test_rate_times_that_do_not_go_up_are_refused_with_the_line(tmp_path):
    for name, text in (
        ("desc.csv", "time_s,qps\n2,100\n1,100\n0,100\n"),
        ("same.csv", "time_s,qps\n5,100\n5,100\n5,100\n"),
    ):
        with pytest.raises(TraceError, match="line 3: time_s is not evenly spaced ascending"):
            read_rates(write(tmp_path, name, text))


def test_rate_columns_are_read_by_their_header_names(tmp_path):
    swapped = read_rates(write(tmp_path, "s.csv", "qps,time_s\n100,0\n120,1\n140,2\n"))
    assert swapped.bin_s == 1.0 and list(swapped.rates) == [100, 120, 140]
    extra = load_trace(write(tmp_path, "e.csv", "time_s,qps,note\n0,100,a\n1,50,b\n"))
    assert isinstance(extra, RateSeries) and list(extra.rates) == [100, 50]
    quoted = read_rates(write(tmp_path, "q.csv", '"time_s","qps"\n"0","7"\n"1","8"\n'))
    assert list(quoted.rates) == [7, 8]
    with pytest.raises(TraceError, match="names no rate column"):
        read_rates(write(tmp_path, "n.csv", "a,b,c\n0,1,2\n"))


def test_a_byte_order_mark_is_not_data(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeff".encode() + b"0\n500\n1000\n")
    tr = load_trace(p)
    assert isinstance(tr, ArrivalTrace) and tr.arrivals_s.size == 3
    assert tr.duration_s == pytest.approx(1.0)
    q = tmp_path / "bom_rates.csv"
    q.write_bytes("\ufeff".encode() + b"0,100\n1,200\n")
    assert list(load_trace(q).rates) == [100, 200]


def test_millisecond_timestamp_columns_are_read_in_ms(tmp_path):
    ms = load_trace(write(tmp_path, "a.csv", "arrival_ms\n0\n2500\n5000\n"))
    assert ms.duration_s == pytest.approx(5.0)
    epoch_ms = load_trace(write(tmp_path, "b.csv", "ts\n1700000000000\n1700000004000\n"))
    assert epoch_ms.duration_s == pytest.approx(4.0)
    secs = load_trace(write(tmp_path, "c.csv", "ts\n1700000000\n1700000004\n"))
    assert secs.duration_s == pytest.approx(4.0)
    items = load_trace(write(tmp_path, "d.csv", "items\n0\n4\n"))  # ends in ms, not ms
    assert items.duration_s == pytest.approx(4.0)
    paren = load_trace(write(tmp_path, "e.csv", "time (ms)\n0\n4000\n"))
    assert paren.duration_s == pytest.approx(4.0)


def test_arrivals_spanning_centuries_are_refused_before_binning(tmp_path):
    from lokirl.traces import as_rates

    far = load_trace(write(tmp_path, "far.txt", "0\n10\n1e15\n"))
    with pytest.raises(TraceError, match="check the time unit"):
        as_rates(far)


def test_semicolon_and_tab_separated_files_are_named_as_such(tmp_path):
    for name, text, what in (
        ("s.csv", "time_s;qps\n0;1\n", "semicolons"),
        ("t.tsv", "0\t1\n", "tabs"),
    ):
        with pytest.raises(TraceError, match=f"separated by {what}"):
            load_trace(write(tmp_path, name, text))


def test_rate_rows_are_csv_and_their_width_is_checked(tmp_path):
    # a quoted thousands separator is one field (not "1" and "000" read as 1)
    p = write(tmp_path, "k.csv", 'time_s,qps\n0,"1,000"\n1,"1,200"\n')
    with pytest.raises(TraceError, match=r"line 2: qps '1,000' is not a number"):
        load_trace(p, fmt="rates")
    # a decimal comma makes a third field: refused, not read as 100
    p = write(tmp_path, "d.csv", "time_s,qps\n0,100,5\n1,101,5\n")
    with pytest.raises(TraceError, match=r"line 2: 3 fields, the header has 2.*100\.5"):
        load_trace(p, fmt="rates")
    # a trailing comma is no field
    p = write(tmp_path, "t.csv", "time_s,qps\n0,100,\n1,101,\n")
    assert load_trace(p, fmt="rates").rates.tolist() == [100.0, 101.0]


def test_rate_file_errors_name_what_is_wrong(tmp_path):
    import warnings

    p = write(tmp_path, "q.csv", "qps\n100\n")
    with pytest.raises(TraceError, match="names one column; a rate file has two"):
        load_trace(p, fmt="rates")
    # rates whose sum overflows a float: refused by the reader, no numpy warning first
    p = write(tmp_path, "h.csv", "time_s,qps\n0,1e308\n1,1e308\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TraceError, match="largest number a float holds"):
            load_trace(p, fmt="rates")


def test_utf16_files_and_an_excel_separator_line_read(tmp_path):
    # what a spreadsheet saves as "Unicode text", with its byte-order mark
    p = tmp_path / "u.csv"
    p.write_text("time_s,qps\n0,10\n1,20\n", encoding="utf-16")
    assert load_trace(p).rates.tolist() == [10, 20]
    # Excel's "sep=," first line names the separator; it is not a header
    p = write(tmp_path, "x.csv", "sep=,\ntime_s,qps\n0,10\n1,20\n")
    assert load_trace(p).rates.tolist() == [10, 20]
    p = write(tmp_path, "y.csv", "sep=,\n5\n7\n")
    assert read_arrivals(p).arrivals_s.tolist() == [0.005, 0.007]
    with pytest.raises(TraceError, match=r"line 1 says the separator is ';'.*Fix: save it with"):
        load_trace(write(tmp_path, "z.csv", "sep=;\ntime_s;qps\n0;1\n"))


def test_an_arrival_file_in_epoch_ms_starts_at_its_first_request(tmp_path):
    # epoch times would otherwise play 54 years of silence (or be refused as 1.7e9 bins)
    p = write(tmp_path, "epoch.txt", "1700000000500\n1700000000000\n1700000002000\n")
    assert read_arrivals(p).arrivals_s.tolist() == [0.0, 0.5, 2.0]
    # a file's own origin is kept below that: a first request at 1,000 s stays there
    p = write(tmp_path, "late.txt", "1000000\n1000500\n")
    assert read_arrivals(p).arrivals_s.tolist() == [1000.0, 1000.5]
