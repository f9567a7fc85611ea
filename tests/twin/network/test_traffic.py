import math
from datetime import UTC, datetime
from fractions import Fraction

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.network.traffic import (
    CLASS_REQUIREMENTS,
    DAY_NS,
    ConstantRate,
    DiurnalRate,
    Flow,
    ForecastEvent,
    OnOffRate,
    TrafficClass,
    WindowRate,
    announced_events,
    cumulative_bits,
    cumulative_packets,
    demand_bits,
    demand_bits_array,
    exact_rate_bps,
    flows_from_mapping,
    packets,
    requirements,
)
from twin.units import NS_PER_S

S = NS_PER_S
H = 3600 * S
START = datetime(2024, 6, 21, tzinfo=UTC)


def total_over_ticks(flow, tick_lengths_ns, t0=0):
    t, total = t0, 0
    for dt in tick_lengths_ns:
        bits = demand_bits(flow, t, dt)
        assert isinstance(bits, int) and bits >= 0
        total += bits
        t += dt
    return t, total


# --- Table 1 ------------------------------------------------------------------------------


def test_class_requirements_are_table_1():
    # Main paper (AI-optimized routing for quantum-enabled NTN industrial networks), Sec. III-B,
    # Table 1: latency, jitter, reliability and security mode per class.
    r1, r2, r3, r4 = (CLASS_REQUIREMENTS[c] for c in TrafficClass)
    assert (r1.latency_target_s, r1.jitter_target_s, r1.reliability_target) == (1e-3, 1e-6, 0.99999)
    assert (r1.security_mode, r1.uses_quantum_keys) == ("otp", True)
    assert (r2.latency_target_s, r2.reliability_target, r2.security_mode) == (
        50e-3,
        0.99999,
        "aes-256-gcm",
    )
    assert r3.latency_target_s == math.inf and r3.reliability_target == 0.999
    assert r3.security_mode == "aes-128-batch"
    assert r4.latency_target_s == math.inf and r4.reliability_target == 0.99
    assert (r4.security_mode, r4.uses_quantum_keys) == ("pqc", False)
    assert r1.meets_latency(0.9e-3) and not r1.meets_latency(1.1e-3)
    assert r4.meets_latency(1e6)
    assert [c.value for c in TrafficClass] == ["type_i", "type_ii", "type_iii", "type_iv"]


def test_class_names_parse_leniently_and_fail_clearly():
    for text in ("type_i", "type-i", "Type-I", "I", TrafficClass.TYPE_I):
        assert TrafficClass.parse(text) is TrafficClass.TYPE_I
    assert requirements("type-iv").traffic_class is TrafficClass.TYPE_IV
    with pytest.raises(ValueError, match="allowed: type_i"):
        TrafficClass.parse("type-v")


# --- exact demand -------------------------------------------------------------------------


def test_rates_are_read_exactly():
    assert exact_rate_bps(1.5e6) == 1_500_000
    assert exact_rate_bps(0.1) == Fraction(1, 10)
    assert exact_rate_bps("1/3") == Fraction(1, 3)
    for bad in (-1, math.nan, math.inf, True, "fast", None):
        with pytest.raises(ValueError, match="rate_bps"):
            exact_rate_bps(bad)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.one_of(
        st.fractions(min_value=0, max_value=10**9, max_denominator=10**6),
        st.floats(min_value=0, max_value=1e10, allow_nan=False),
    ),
    ticks=st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=300),
)
def test_constant_demand_totals_are_exact_over_any_ticks(rate, ticks):
    flow = Flow("f", "a", "b", TrafficClass.TYPE_I, rate)
    t_end, total = total_over_ticks(flow, ticks)
    exact = Fraction(repr(rate)) if isinstance(rate, float) else rate
    assert total == cumulative_bits(flow, t_end) == math.floor(exact * Fraction(t_end, S))


def test_one_third_bit_per_second_over_300_thousand_ticks():
    flow = Flow("f", "a", "b", "type-iii", "1/3")
    per_tick = [demand_bits(flow, k * 10**7, 10**7) for k in range(300_000)]  # 10 ms ticks
    # 3000 s at 1/3 bit/s: exactly 1000 bits, one every third second, never 2 in a tick
    assert sum(per_tick) == 1000 and max(per_tick) == 1
    firsts = [k for k, b in enumerate(per_tick) if b][:3]
    assert firsts == [299, 599, 899]  # the bit completes at t = 3 s, 6 s, 9 s


def test_zero_length_tick_and_bad_times():
    flow = Flow("f", "a", "b", "type-i", 1e6)
    assert demand_bits(flow, 5 * S, 0) == 0
    with pytest.raises(ValueError, match="integer nanoseconds"):
        demand_bits(flow, 1.5, S)
    with pytest.raises(ValueError, match=">= 0"):
        demand_bits(flow, -1, S)


# --- diurnal, on/off, windows -------------------------------------------------------------


def test_diurnal_profile_follows_utc_hours_and_integrates_exactly():
    hourly = [1000 * (h + 1) for h in range(24)]
    # scenario starts at 22:30 UTC: the first half hour is at hour 22's rate
    d = DiurnalRate(tuple(hourly), start_time_of_day_ns=22 * H + H // 2)
    flow = Flow("f", "a", "b", "type-ii", d)
    assert demand_bits(flow, 0, H // 2) == 23_000 * 1800
    assert demand_bits(flow, H // 2, H) == 24_000 * 3600  # 23:00-24:00
    assert demand_bits(flow, H // 2 + H, H) == 1_000 * 3600  # 00:00-01:00, the next day
    # any run of whole days carries exactly the daily volume, whatever the ticks
    _, total = total_over_ticks(
        flow, [7 * S + 123] * (2 * 86_400 // 7) + [DAY_NS * 2 % (7 * S + 123)]
    )
    t_end = (2 * 86_400 // 7) * (7 * S + 123) + DAY_NS * 2 % (7 * S + 123)
    assert total == cumulative_bits(flow, t_end)
    assert cumulative_bits(flow, 3 * DAY_NS) == 3 * 3600 * sum(hourly)


def test_diurnal_sinusoid_peaks_at_its_hour_and_needs_whole_slots():
    d = DiurnalRate.sinusoid(1e6, 5e5, peak_hour_utc=13.5)
    rates = [int(r) for r in d.slot_rates_bps]
    assert rates.index(max(rates)) == 13 and rates[13] == 1_500_000
    assert rates.index(min(rates)) == 1 and rates[1] == 500_000
    with pytest.raises(ValueError, match="divides the day"):
        DiurnalRate(tuple([1] * 7))
    with pytest.raises(ValueError, match="non-negative"):
        DiurnalRate.sinusoid(1.0, 2.0, 12)


def test_on_off_windows_repeat_with_their_offset():
    # 3 s on every 10 s, windows starting at t = 5 s, 15 s, ... (and -5 s: on at t = 0? no)
    o = OnOffRate(1000, 10 * S, 3 * S, offset_ns=5 * S)
    flow = Flow("f", "a", "b", "type-iii", o)
    per_second = [demand_bits(flow, k * S, S) for k in range(20)]
    assert per_second == [0] * 5 + [1000] * 3 + [0] * 7 + [1000] * 3 + [0] * 2
    # offset -1 s: the window of [-1 s, 2 s) covers t = 0
    early = Flow("g", "a", "b", "type-iii", OnOffRate(1000, 10 * S, 3 * S, offset_ns=-S))
    assert [demand_bits(early, k * S, S) for k in range(4)] == [1000, 1000, 0, 0]
    with pytest.raises(ValueError, match="must not exceed"):
        OnOffRate(1, 10, 11)


def test_windows_add_up_where_they_overlap():
    w = WindowRate(((10 * S, 20 * S, 100), (15 * S, 30 * S, "0.5")))
    flow = Flow("f", "a", "b", "type-iv", w)
    assert demand_bits(flow, 0, 10 * S) == 0
    assert demand_bits(flow, 10 * S, 5 * S) == 500
    assert demand_bits(flow, 15 * S, 5 * S) == 502  # 100 + 0.5 bit/s: 502.5 floors to 502
    assert cumulative_bits(flow, 100 * S) == 1000 + 7  # 7.5 floors once, at the end
    with pytest.raises(ValueError, match="ends"):
        WindowRate(((5, 4, 1),))


# --- forecast events ----------------------------------------------------------------------


def firmware_flow():
    # "Firmware update scheduled for 03:00" (main paper sec. VI-A): 20 GB in one hour,
    # announced a day ahead, on top of a 1 kbit/s background
    event = ForecastEvent(
        "firmware-update",
        start_ns=3 * H,
        volume_bits=20 * 8 * 10**9,
        duration_ns=H,
        announce_ns=0,
        deadline_ns=6 * H,
    )
    return Flow("fw", "frankfurt-hub", "munich-factory", "type-iv", [event, 1000]), event


def test_forecast_event_lands_in_the_right_ticks():
    flow, event = firmware_flow()
    minute = 60 * S
    per_minute = [demand_bits(flow, k * minute, minute) - 60_000 for k in range(6 * 60)]
    busy = [k for k, b in enumerate(per_minute) if b]
    assert busy == list(range(180, 240))  # 03:00-04:00 only
    assert sum(per_minute) == 160 * 10**9  # the whole 20 GB, exactly
    # a tick straddling the start gets the part inside the window only
    assert demand_bits(flow, 3 * H - 30 * S, minute) - 60_000 == 160 * 10**9 * 30 // 3600


def test_forecast_events_are_known_from_their_announcement():
    flow, event = firmware_flow()
    late = ForecastEvent("late", start_ns=2 * H, volume_bits=1, duration_ns=S, announce_ns=H)
    other = Flow("o", "a", "b", "type-iv", late)
    assert announced_events([flow, other], 0) == [(flow, event)]
    assert announced_events([other, flow], H) == [(other, late), (flow, event)]
    assert announced_events([flow, other], 4 * H) == []
    with pytest.raises(ValueError, match="after it starts"):
        ForecastEvent("x", start_ns=10, volume_bits=1, duration_ns=1, announce_ns=11)
    with pytest.raises(ValueError, match="deadline"):
        ForecastEvent("x", start_ns=10, volume_bits=1, duration_ns=5, deadline_ns=12)


def test_a_deferred_event_moves_its_whole_volume_later_and_no_past_its_deadline():
    flow, event = firmware_flow()  # 03:00-04:00, deadline 06:00: two hours of slack
    assert event.slack_ns == 2 * H
    later = flow.deferred({"firmware-update": 2 * H})
    minute = 60 * S
    per_minute = [demand_bits(later, k * minute, minute) - 60_000 for k in range(8 * 60)]
    assert [k for k, b in enumerate(per_minute) if b] == list(range(300, 360))  # 05:00-06:00
    assert sum(per_minute) == 160 * 10**9
    (moved,) = later.events
    assert (moved.announce_ns, moved.deadline_ns, moved.duration_ns) == (0, 6 * H, H)
    assert flow.deferred({}) == flow and later.demand[1] == flow.demand[1]  # the 1 kbit/s kept
    with pytest.raises(ValueError, match=r"at most 7200000000000 ns"):
        flow.deferred({"firmware-update": 2 * H + 1})
    with pytest.raises(ValueError, match="delay_ns"):
        flow.deferred({"firmware-update": -1})
    with pytest.raises(ValueError, match="no forecast event 'nightly'.*firmware-update"):
        flow.deferred({"nightly": H})
    with pytest.raises(ValueError, match="more than one forecast event named 'firmware-update'"):
        Flow("fw2", "frankfurt-hub", "munich-factory", "type-iv", [event, event])
    no_deadline = ForecastEvent("x", start_ns=H, volume_bits=8, duration_ns=S)
    assert no_deadline.slack_ns == 0
    with pytest.raises(ValueError, match="at most 0 ns"):
        no_deadline.deferred(1)


# --- packets ------------------------------------------------------------------------------


def test_packets_complete_across_ticks():
    # 10 packets/s of 1000 bits, counted per 0.25 s tick: 2 or 3 per tick, 10 per second
    flow = Flow("iot", "field", "gw", "type-iii", 10_000, packet_size_bits=1000, devices=200)
    counts = [packets(flow, k * S // 4, S // 4) for k in range(40)]
    assert sum(counts) == 100 == cumulative_packets(flow, 10 * S)
    assert set(counts) == {2, 3}
    with pytest.raises(ValueError, match="flow-level"):
        packets(Flow("f", "a", "b", "type-i", 1), 0, S)


def test_demand_array_matches_per_flow():
    flows = [Flow(f"f{k}", "a", "b", "type-i", 1000 * k) for k in range(5)]
    arr = demand_bits_array(flows, 0, S)
    assert arr.dtype == np.int64 and arr.shape == (5,)
    assert arr.tolist() == [0, 1000, 2000, 3000, 4000]


def test_flow_validation_names_the_problem():
    flow = Flow("f", "a", "b", "type-i", 1, forbidden_jurisdictions=["ch", "RU", "CH"])
    assert flow.forbidden_jurisdictions == ("CH", "RU")
    with pytest.raises(ValueError, match="two different sites"):
        Flow("f", "a", "a", "type-i", 1)
    with pytest.raises(ValueError, match="list of codes"):
        Flow("f", "a", "b", "type-i", 1, forbidden_jurisdictions="CH")
    with pytest.raises(ValueError, match="demand"):
        Flow("f", "a", "b", "type-i", {"rate": 1})
    with pytest.raises(ValueError, match="packet_size_bits"):
        Flow("f", "a", "b", "type-i", 1, packet_size_bits=0)


# --- the scenario's traffic section -------------------------------------------------------

TRAFFIC_YAML = """
traffic:
  flows:
    - name: munich-stuttgart-control       # Type-I: OTP keys, bits = key bits
      traffic_class: type_i
      src: munich-factory
      dst: stuttgart-factory
      rate_bps: 64000
      forbid_transit: [CH]                 # jurisdictions the data must not cross
    - name: munich-twin-sync               # Type-II digital-twin telemetry, daily profile
      traffic_class: type_ii
      src: munich-factory
      dst: frankfurt-hub
      demand:
        - {kind: diurnal, mean_bps: 2.0e+6, amplitude_bps: 1.0e+6, peak_hour_utc: 13}
    - name: hamburg-meters                 # Type-III, packet-level (the IoT paper's PDR)
      traffic_class: type_iii
      src: hamburg-port
      dst: frankfurt-hub
      packet_size_bytes: 128
      packets_per_s: 50
      devices: 5000
    - name: shift-reports
      traffic_class: type_iii
      src: stuttgart-factory
      dst: frankfurt-hub
      demand:
        - {kind: on_off, rate_bps: 1.0e+5, period_s: 28800, on_s: 600, offset_s: 21600}
        - {kind: window, start_utc: "2024-06-21T12:00:00Z", end_s: 45000, rate_bps: 5000}
    - name: firmware-update                # MES forecast (main paper sec. VI-A)
      traffic_class: type_iv
      src: frankfurt-hub
      dst: munich-factory
      demand:
        - kind: forecast
          name: plc-firmware-2024-06
          start_utc: 2024-06-21T03:00:00Z
          volume_gb: 20                    # decimal GB: 1e9 bytes
          duration_s: 3600                 # or rate_bps: the duration follows
          announce_lead_s: 86400           # announced a day ahead (clipped at the start)
          deadline_utc: "2024-06-21T06:00:00Z"
"""

SITES = ["munich-factory", "stuttgart-factory", "frankfurt-hub", "hamburg-port"]


def test_traffic_section_builds_flows():
    section = yaml.safe_load(TRAFFIC_YAML)["traffic"]
    flows = flows_from_mapping(section, START, site_names=SITES)
    assert [f.name for f in flows] == [
        "munich-stuttgart-control",
        "munich-twin-sync",
        "hamburg-meters",
        "shift-reports",
        "firmware-update",
    ]
    control, sync, meters, reports, fw = flows
    assert control.forbidden_jurisdictions == ("CH",)
    assert demand_bits(control, 0, S) == 64_000 and control.demand == (ConstantRate(64_000),)
    assert demand_bits(sync, 13 * H, H) == 2_991_445 * 3600  # 2e6 + 1e6 cos(2 pi 0.5 h / 24 h)
    assert meters.packet_level and packets(meters, 0, S) == 50 and meters.devices == 5000
    assert demand_bits(reports, 6 * H, 600 * S) == 10**5 * 600
    assert demand_bits(reports, 12 * H, H) == 5000 * 1800  # window 12:00-12:30
    (event,) = fw.events
    assert (event.start_ns, event.end_ns, event.volume_bits) == (3 * H, 4 * H, 160 * 10**9)
    assert event.announce_ns == 0 and event.deadline_ns == 6 * H


def test_traffic_section_errors_are_specific():
    def build(flow):
        return flows_from_mapping({"flows": [flow]}, START, site_names=SITES)

    base = {"name": "x", "traffic_class": "type_i", "src": "munich-factory", "dst": "hamburg-port"}
    with pytest.raises(ValueError, match="exactly one of rate_bps"):
        build(base)
    with pytest.raises(ValueError, match="unknown key"):
        build({**base, "rate_bps": 1, "rate_mbps": 1})
    with pytest.raises(ValueError, match="not a site"):
        build({**base, "dst": "paris", "rate_bps": 1})
    with pytest.raises(ValueError, match="no time zone"):
        build(
            {
                **base,
                "demand": [
                    {
                        "kind": "window",
                        "start_utc": "2024-06-21T01:00:00",
                        "end_s": 7200,
                        "rate_bps": 1,
                    }
                ],
            }
        )
    with pytest.raises(ValueError, match="allowed: constant"):
        build({**base, "demand": [{"kind": "burst"}]})
    with pytest.raises(ValueError, match="before the scenario start"):
        build(
            {
                **base,
                "demand": [
                    {
                        "kind": "forecast",
                        "name": "e",
                        "volume_bits": 8,
                        "rate_bps": 1,
                        "start_utc": "2024-06-20T23:00:00Z",
                    }
                ],
            }
        )
    flows = build(
        {
            **base,
            "demand": [
                {"kind": "forecast", "name": "e", "volume_bits": 10, "rate_bps": 3, "start_s": 5}
            ],
        }
    )
    (event,) = flows[0].events
    assert event.duration_ns == math.ceil(10 * S / 3) and event.announce_ns == 5 * S
