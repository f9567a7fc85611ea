"""G(t) from the physics: edges appear and vanish with geometry and weather."""

import numpy as np
import pytest

from twin.network.topology import FSO_MASK_RAD, EdgeKind, TopologyModel
from twin.network.weather import SiteWeather
from twin.physics.geometry import look_angles
from twin.physics.link_budget import compute_link_budget
from twin.scenarios import load_scenario
from twin.units import NS_PER_S, SPEED_OF_LIGHT_M_PER_S


@pytest.fixture(scope="module")
def small():
    scenario = load_scenario("small")
    return scenario, TopologyModel(scenario)


def test_nodes_are_sites_then_haps_then_satellites(small):
    scenario, model = small
    names = model.node_names
    assert names[: len(scenario.sites)] == tuple(s.name for s in scenario.sites)
    assert names[len(scenario.sites)] == scenario.haps[0].name
    assert names[-24:] == tuple(f"shell-a-{k:02d}" for k in range(24))
    assert model.haps_offset == len(scenario.sites) == model._haps_offset
    assert model.satellite_offset == len(scenario.sites) + len(scenario.haps)
    assert model.satellite_offset == model._sat_offset == len(names) - 24
    with pytest.raises(AttributeError):
        model.satellite_offset = 0


def test_snapshot_is_a_pure_function_of_time(small):
    _, model = small
    one, two = model.snapshot(1234 * NS_PER_S), model.snapshot(1234 * NS_PER_S)
    for field in ("a", "b", "kind", "transmittance", "latency_s", "skr_bps", "up"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))


def test_edges_are_canonical_and_sorted(small):
    _, model = small
    snap = model.snapshot(600 * NS_PER_S)
    assert np.all(snap.a < snap.b)
    keys = list(zip(snap.a.tolist(), snap.b.tolist(), snap.kind.tolist(), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_optical_ground_space_edges_respect_the_elevation_mask(small):
    scenario, model = small
    seen = 0
    for t_s in range(0, 3600, 120):
        snap = model.snapshot(t_s * NS_PER_S)
        fso = np.flatnonzero(snap.kind == EdgeKind.FSO_GROUND_SPACE)
        for e in fso:
            site = scenario.sites[snap.a[e]]
            assert site.kind == "ogs"
            sat_pos = model._propagator.positions_ecef_m(
                *model._epoch[:1], model._epoch[1] + t_s / 86400
            )[:, snap.b[e] - model._sat_offset]
            look = look_angles(site.lat_rad, site.lon_rad, site.altitude_m, sat_pos)
            assert look.elevation_rad >= FSO_MASK_RAD - 1e-6
            # latency is the slant range at the speed of light
            assert snap.latency_s[e] == pytest.approx(look.slant_range_m / SPEED_OF_LIGHT_M_PER_S)
            seen += 1
    assert seen > 0, "no satellite pass over the small scenario's OGS in an hour"


def test_fibre_latency_and_key_rate_follow_length(small):
    scenario, model = small
    snap = model.snapshot(0)
    fiber = np.flatnonzero(snap.kind == EdgeKind.FIBER)
    assert fiber.size == len(scenario.fiber.edges)
    for e in fiber:
        a, b = model.node_names[snap.a[e]], model.node_names[snap.b[e]]
        edge = next(x for x in scenario.fiber.edges if {x.a, x.b} == {a, b})
        length_km = scenario.fiber_length_m(edge) / 1e3
        assert snap.latency_s[e] == pytest.approx(length_km * 4.897e-6, rel=1e-3)
        # small's backbone has trusted relays every <= 80 km: every span carries key, and a
        # span's rate is that of one segment (shorter segments, more key)
        spacing_km = scenario.fiber.trusted_relay_spacing_m / 1e3
        segment_km = length_km / max(1.0, np.ceil(length_km / spacing_km))
        assert segment_km <= 80.0 and snap.skr_bps[e] > 0
    segment = {}
    for e in fiber:
        a, b = model.node_names[snap.a[e]], model.node_names[snap.b[e]]
        edge = next(x for x in scenario.fiber.edges if {x.a, x.b} == {a, b})
        length_km = scenario.fiber_length_m(edge) / 1e3
        segment[e] = length_km / max(1.0, np.ceil(length_km / spacing_km))
    # same band: the longer segment has the lower key rate
    c_band = [e for e in fiber if snap.latency_s[e] > 0 and segment[e] > 0]
    longest = max(c_band, key=lambda e: segment[e])
    shortest = min(c_band, key=lambda e: segment[e])
    if segment[longest] > segment[shortest] * 1.2:
        assert snap.skr_bps[longest] < snap.skr_bps[shortest]


def test_isl_chords_through_the_earth_are_down(small):
    # 24 satellites in 6 planes: in-plane neighbours are 90 deg apart, their chord dips
    # ~1,500 km below the surface at 550 km altitude: no line of sight
    _, model = small
    snap = model.snapshot(0)
    isl = snap.kind == EdgeKind.ISL
    assert isl.sum() == 48
    assert not np.any(snap.up[isl])


@pytest.fixture(scope="module")
def mega():
    return TopologyModel(load_scenario("mega"))


def test_mega_isl_neighbours_are_up(mega):
    model = mega
    snap = model.snapshot(0)
    isl = snap.kind == EdgeKind.ISL
    assert isl.sum() == 2 * 1584  # ring neighbour + next plane, each listed once
    assert snap.up[isl].mean() > 0.99


def test_rain_cell_adds_loss_only_while_over_the_site(small):
    scenario, _ = small
    weather = SiteWeather(scenario.weather, scenario.sites, 850e-9)
    rained = [i for i, s in enumerate(scenario.sites) if s.name == "dlr-oberpfaffenhofen"]
    zen = np.array([0.3])
    alt = np.array([scenario.sites[rained[0]].altitude_m])
    assert weather.extra_loss_db(100.0, rained, zen, alt)[0] == 0.0
    wet = weather.extra_loss_db(1500.0, rained, zen, alt)[0]  # overhead ~15 min after start
    # 25 mm/h rain, 1.076 R^0.67 = 9.3 dB/km, through the rain column from the station (600 m)
    # up to 3 km, along a path at 0.3 rad from the zenith: 9.3 x 2.4 / cos(0.3) = 23.4 dB
    assert wet == pytest.approx(9.30 * 2.4 / np.cos(0.3), rel=0.01)
    dry = [i for i, s in enumerate(scenario.sites) if s.name == "zugspitze"]
    assert weather.extra_loss_db(1500.0, dry, zen, alt)[0] == 0.0


def test_csr_keeps_the_faster_of_parallel_edges(small):
    _, model = small
    for t_s in range(0, 3600, 60):
        snap = model.snapshot(t_s * NS_PER_S)
        if np.any(snap.kind == EdgeKind.FSO_GROUND_SPACE):
            break
    csr = snap.to_csr("latency_s")
    assert (csr != csr.T).nnz == 0
    e = np.flatnonzero(snap.kind == EdgeKind.FSO_GROUND_SPACE)[0]
    assert csr[snap.a[e], snap.b[e]] == pytest.approx(snap.latency_s[e])
    quantum = snap.to_csr("latency_s", quantum_only=True)
    rf = np.flatnonzero(snap.kind == EdgeKind.RF_KA)
    for k in rf:
        same_pair_fso = (
            (snap.a == snap.a[k]) & (snap.b == snap.b[k]) & (snap.kind != EdgeKind.RF_KA)
        )
        if not np.any(same_pair_fso & (snap.skr_bps > 0)):
            assert quantum[snap.a[k], snap.b[k]] == 0


def test_fog_lies_on_the_ground_of_each_site_and_haps_paths_mix():
    import yaml

    from twin.scenarios import packaged_scenario_path, scenario_from_dict
    from twin.scenarios.loader import _Loader  # the project's YAML 1.2 reading (NO is Norway)

    data = yaml.load(packaged_scenario_path("small").read_text(), Loader=_Loader)
    data["weather"]["events"] = [
        {"name": "valley-fog", "kind": "fog", "sites": ["zugspitze", "dlr-oberpfaffenhofen"],
         "start_s": 0, "end_s": 600, "visibility_m": 200},
    ]  # fmt: skip
    fogged = scenario_from_dict(data)
    weather = SiteWeather(fogged.weather, fogged.sites, 850e-9)
    idx = [i for i, s in enumerate(fogged.sites) if s.name in ("zugspitze", "dlr-oberpfaffenhofen")]
    alts = np.array([fogged.sites[i].altitude_m for i in idx])
    loss = weather.extra_loss_db(10.0, idx, np.zeros(2), alts)
    # Kim: V = 200 m at 850 nm, ~85 dB/km over the 100 m fog layer on each site: the same loss
    # on a mountain (2,650 m) as in the plain (600 m)
    assert loss[0] == pytest.approx(loss[1]) and loss[0] > 5.0
    # per-path platform altitudes (OGS-HAPS paths ending inside the layer) broadcast per path
    mixed = weather.extra_loss_db(10.0, idx, np.zeros(2), alts, platform_altitude_m=alts + 50.0)
    assert mixed == pytest.approx(loss / 2)


SNAPSHOT_FIELDS = ("a", "b", "kind", "transmittance", "latency_s", "capacity_bps", "skr_bps",
                   "fidelity", "up", "weather_loss_db", "distance_m")  # fmt: skip


@pytest.mark.parametrize("which", ["small", "mega"])
def test_isl_edges_are_compute_link_budget_bit_for_bit(which, small, mega):
    # G(t) computes only the ISL fields it keeps; they must be the reference budget's values
    # exactly (not approximately), so that the shortcut can never drift from the physics
    model = small[1] if which == "small" else mega
    snap = model.snapshot(321 * NS_PER_S)
    isl = np.flatnonzero(snap.kind == EdgeKind.ISL)
    assert isl.size
    sat = model.satellite_positions_m
    range_m = np.linalg.norm(sat[:, snap.a[isl] - model.satellite_offset]
                             - sat[:, snap.b[isl] - model.satellite_offset], axis=0)  # fmt: skip
    budget = compute_link_budget(model._isl_preset, range_m=range_m, fade_margin=False)
    np.testing.assert_array_equal(snap.latency_s[isl], range_m / SPEED_OF_LIGHT_M_PER_S)
    np.testing.assert_array_equal(snap.transmittance[isl], budget.transmittance)
    np.testing.assert_array_equal(snap.skr_bps[isl], np.where(snap.up[isl], budget.skr_bps, 0.0))
    clear = snap.up[isl]
    if clear.any():
        assert np.all(snap.skr_bps[isl][clear] == budget.skr_bps[clear])


def test_a_snapshot_does_not_depend_on_the_snapshots_before_it(small):
    # the model reuses pieces between ticks (the OGS-HAPS edges while the weather holds): a
    # snapshot after a run of ticks through a rain cell's passage must equal a fresh model's
    scenario, model = small
    times_s = [0, 1, 2, 599, 600, 601, 900, 1500, 1501, 1502, 2399, 2400, 2401, 3000, 1500, 0]
    fresh = TopologyModel(scenario)
    for t_s in times_s:
        one = model.snapshot(t_s * NS_PER_S)
        two = TopologyModel(scenario).snapshot(t_s * NS_PER_S) if t_s in (1501, 0) else None
        three = fresh.snapshot(t_s * NS_PER_S)
        for other in (two, three):
            if other is None:
                continue
            for field in SNAPSHOT_FIELDS:
                x, y = getattr(one, field), getattr(other, field)
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y, err_msg=f"{field} at {t_s} s")
    # the test means something only if the OGS-HAPS weather changes along the way
    seen = set()
    for t_s in times_s:
        snap = model.snapshot(t_s * NS_PER_S)
        seen.update(snap.weather_loss_db[snap.kind == EdgeKind.FSO_GROUND_HAPS].tolist())
    assert len(seen) >= 2


@pytest.mark.parametrize("which", ["small", "mega"])
def test_the_forecasts_prefilter_keeps_every_satellite_a_platform_sees(which, small, mega):
    """satellite_state runs the exact elevation test only on the satellites its pre-filter
    keeps: over an hour of instants the contacts are those of the exact test on every
    satellite, and on mega the filter drops most of them (what it is for)."""
    model = small[1] if which == "small" else mega
    kept = []
    for k in range(0, 3600, 150):
        t_ns = k * NS_PER_S + 7
        positions, contact = model.satellite_state(t_ns)
        exact = np.zeros(positions.shape[1], dtype=bool)
        for _, elevation, mask in model.ground_elevations_rad(positions):
            exact |= np.any(elevation >= mask, axis=0)
        assert np.array_equal(contact, exact)
        near = model._may_see_a_platform(positions)
        assert not np.any(exact & ~near)
        kept.append(near.mean())
    assert any(kept)  # some instant has a satellite in view
    if which == "mega":
        assert max(kept) < 0.5
