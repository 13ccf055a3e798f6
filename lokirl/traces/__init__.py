"""Request traces: data types, readers of the documented formats, transforms, generators.

Typical use::

    from lokirl.traces import resolve_trace, as_rates, rescale
    series = rescale(as_rates(resolve_trace("twitter_zipf_flat_bursty")), 50, 425)
"""

from lokirl.traces.bundled import bundled_path, bundled_trace, list_bundled, resolve_trace
from lokirl.traces.describe import (
    describe_trace,
    late_start_s,
    read_note,
    requests_before,
    resolve_trace_noted,
)
from lokirl.traces.generators import FAMILIES, generate
from lokirl.traces.readers import (
    detect_format,
    load_trace,
    read_arrivals,
    read_rates,
    read_timestamps,
    write_arrivals,
    write_rates,
)
from lokirl.traces.transforms import (
    concat,
    fine_bins,
    mix_segments,
    rebin,
    resample,
    rescale,
    speedup,
    window,
)
from lokirl.traces.types import (
    ArrivalTrace,
    RateSeries,
    Trace,
    arrivals_to_rates,
    as_arrivals,
    as_rates,
    rates_to_arrivals,
)

__all__ = [
    "FAMILIES",
    "ArrivalTrace",
    "RateSeries",
    "Trace",
    "arrivals_to_rates",
    "as_arrivals",
    "as_rates",
    "bundled_path",
    "bundled_trace",
    "concat",
    "describe_trace",
    "fine_bins",
    "detect_format",
    "generate",
    "late_start_s",
    "list_bundled",
    "load_trace",
    "mix_segments",
    "rates_to_arrivals",
    "read_arrivals",
    "read_note",
    "read_rates",
    "read_timestamps",
    "rebin",
    "resample",
    "requests_before",
    "rescale",
    "resolve_trace",
    "resolve_trace_noted",
    "speedup",
    "window",
    "write_arrivals",
    "write_rates",
]
