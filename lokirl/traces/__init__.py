"""Request traces: data types, readers of the documented formats, transforms, generators.

Typical use::

    from lokirl.traces import resolve_trace, as_rates, rescale
    series = rescale(as_rates(resolve_trace("twitter_zipf_flat_bursty")), 50, 425)
"""

from lokirl.traces.bundled import bundled_path, bundled_trace, list_bundled, resolve_trace
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
    "fine_bins",
    "detect_format",
    "generate",
    "list_bundled",
    "load_trace",
    "mix_segments",
    "rates_to_arrivals",
    "read_arrivals",
    "read_rates",
    "read_timestamps",
    "rebin",
    "resample",
    "rescale",
    "resolve_trace",
    "speedup",
    "window",
    "write_arrivals",
    "write_rates",
]
