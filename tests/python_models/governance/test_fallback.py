"""Fallback routing to the LLM source: when it routes, what it records, its own stop, and the rows it writes."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.governance.fallback import eligible_signals, resume_route, route, source_stops
from python_models.governance.policy import GovernancePolicy
from python_models.governance.signals import governed_signals, model_signals

DATES = pd.bdate_range("2021-01-04", periods=30)
POLICY = GovernancePolicy(horizon=1, baseline="ensemble")


def _llm(dates, tickers=("A", "B"), confidence=0.8, lag_days=0, model="llama3.1:8b", er=0.02):
    rows = [
        {"ticker": t, "date": d, "model": model, "direction": "up" if er > 0 else "down", "expected_return": er,
         "confidence": confidence, "called_at": d + pd.Timedelta(hours=18) + pd.Timedelta(days=lag_days)}
        for d in dates for t in tickers
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _no_stop():
    return pd.Series(np.nan, index=DATES), pd.Series(False, index=DATES)


def test_all_stopped_routes_exactly_the_sessions_governance_leaves_empty_and_records_each_change():
    active = pd.Series("ensemble", index=DATES)
    active.iloc[10:20] = ""  # the promoted model and the baseline stopped
    signals = eligible_signals(_llm(DATES[12:25]))
    r = route(active, signals, *_no_stop(), mode="all_stopped", policy=POLICY)
    want = pd.Series(False, index=DATES)
    want.iloc[12:20] = True  # stopped and signals: 12..19
    pd.testing.assert_series_equal(r.routed, want, check_names=False)
    d = r.decisions.set_index("decision_date")
    assert list(d["action"]) == ["route_refused", "route", "unroute"]
    assert list(d.index) == [DATES[10], DATES[12], DATES[20]]
    assert "no eligible LLM signal" in d.loc[DATES[10], "reason"]
    assert "2 valid LLM signals" in d.loc[DATES[12], "reason"]
    assert (d["model"] == "llm").all() and "llm_fallback=all_stopped" in d["thresholds"].iloc[0]
    assert set(r.signals["asof_date"]) == set(DATES[12:20])
    assert not route(active, signals, *_no_stop(), mode="off", policy=POLICY).routed.any()
    with pytest.raises(ValueError, match="llm_fallback"):
        route(active, signals, *_no_stop(), mode="sometimes", policy=POLICY)


def test_always_routes_every_session_with_a_signal_and_backfilled_signals_only_when_asked():
    active = pd.Series("ensemble", index=DATES)
    live = _llm(DATES[5:8])
    late = _llm(DATES[20:22], lag_days=30)  # asked a month after the close: backfilled
    both = pd.concat([live, late], ignore_index=True)
    r = route(active, eligible_signals(both), *_no_stop(), mode="always", policy=POLICY)
    assert list(r.routed[r.routed].index) == list(DATES[5:8])
    r = route(active, eligible_signals(both, backfill=True), *_no_stop(), mode="always", policy=POLICY, backfill=True)
    assert list(r.routed[r.routed].index) == [*DATES[5:8], *DATES[20:22]]
    assert list(r.decisions["action"]) == ["route", "unroute", "route", "unroute"]
    # asked twice: the earliest answer is the one routing reads
    again = _llm(DATES[5:6], er=-0.03).assign(called_at=lambda f: f["called_at"] + pd.Timedelta(hours=1))
    chosen = eligible_signals(pd.concat([again, live], ignore_index=True))
    assert (chosen.loc[chosen["date"] == DATES[5], "expected_return"] == 0.02).all()


def test_the_source_stop_is_the_balanced_accuracy_floor_of_a_hand_loop_and_refuses_routing():
    calendar = pd.bdate_range("2020-01-01", periods=120)
    rng = np.random.default_rng(3)
    rows = []
    for i, d in enumerate(calendar[:100]):
        for t in ("A", "B", "C"):
            y = rng.normal(0, 0.02)
            right = i >= 50 or rng.random() < 0.2  # wrong 80 % of the time for the first 50 dates
            rows.append({"ticker": t, "date": d, "direction": ("up" if y > 0 else "down") if right else
                         ("down" if y > 0 else "up"), "y_true": y})  # fmt: skip
    realised = pd.DataFrame(rows)
    h, window = 2, 20
    policy = GovernancePolicy(horizon=h, accuracy_window=window)
    accuracy, stopped = source_stops(realised, calendar, h, policy)
    # by hand: the signal of date i is evidence at close i + h; pooled over the last 20 realisation dates
    at = {calendar[i + h]: realised[realised["date"] == d] for i, d in enumerate(calendar[:100])}
    keys = list(at)
    for j in (30, 60, 80, 101):
        day = calendar[j]
        done = [k for k in keys if k <= day][-window:]
        if len(done) < window:
            assert np.isnan(accuracy[day])
            continue
        rows_in = pd.concat([at[k] for k in done])
        up = rows_in[rows_in["y_true"] > 0]
        down = rows_in[rows_in["y_true"] < 0]
        hand = ((up["direction"] == "up").mean() + (down["direction"] == "down").mean()) / 2
        assert_allclose(accuracy[day], round(hand, 6), atol=1e-6)
    assert not stopped.iloc[: window + h - 1].any()  # no reading before a full window
    assert stopped[calendar[40]] and not stopped[calendar[110]]
    # signals dated after a close are not evidence at it: a later outcome changes nothing before it
    flipped = realised.copy()
    flipped.loc[flipped["date"] >= calendar[60], "y_true"] *= -1
    a2, _ = source_stops(flipped, calendar, h, policy)
    pd.testing.assert_series_equal(a2[: calendar[60 + h - 1]], accuracy[: calendar[60 + h - 1]])
    active = pd.Series("", index=calendar)
    signals = eligible_signals(_llm(calendar[30:50]).assign(date=lambda f: f["date"]))
    r = route(active, signals, accuracy, stopped, mode="all_stopped", policy=policy)
    refused = r.decisions[r.decisions["action"] == "route_refused"]
    assert refused["reason"].str.contains("the LLM source is stopped: balanced directional accuracy").any()
    assert not r.routed[stopped].any() and r.routed[~stopped & calendar.isin(calendar[30:50])].all()


def _forecasts(n_days=30):
    rng = np.random.default_rng(0)
    rows = []
    for m in ("ensemble", "random_walk"):
        for t in ("A", "B"):
            y = rng.normal(0, 0.01, n_days)
            p = 0.5 * y if m == "ensemble" else np.full(n_days, 0.0001)
            rows.append(pd.DataFrame({"model": m, "ticker": t, "asof_date": DATES[:n_days], "horizon": 1,
                                      "y_pred": p, "y_std": 0.01 if m == "ensemble" else 0.03,
                                      "y_lower": p - 0.02, "y_upper": p + 0.02, "y_true": y}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_routed_rows_carry_the_llm_signal_and_the_gate_still_applies():
    per_model = model_signals(_forecasts(), horizon=1, single_models=["random_walk"], min_obs=5)
    active = pd.Series("ensemble", index=DATES)
    active.iloc[10:] = ""
    llm = pd.concat(
        [_llm(DATES[12:15], tickers=("A",)), _llm(DATES[15:16], tickers=("A",), confidence=0.5)], ignore_index=True
    )
    r = route(active, eligible_signals(llm), *_no_stop(), mode="all_stopped", policy=POLICY)
    got = governed_signals(per_model, active, POLICY, r).set_index(["ticker", "asof_date"])
    plain = governed_signals(per_model, active, POLICY).set_index(["ticker", "asof_date"])
    routed = got.loc[("A", DATES[12])]
    assert routed["model"] == "llm:llama3.1:8b" and routed["y_pred"] == 0.02 and routed["confidence"] == 0.8
    assert routed["y_std"] == 0.03  # the random walk's spread at that origin
    assert np.isnan(routed[["y_lower", "y_upper", "probability", "accuracy", "classifier"]].astype(float)).all()
    assert routed["tradable"] and routed["direction"] == 1
    assert got.loc[("A", DATES[15]), "block_reason"] == "low_confidence"  # stated 0.5 < 0.55
    assert got.loc[("B", DATES[12]), "block_reason"] == "no_llm_signal"  # routed session, no signal for B
    assert got.loc[("A", DATES[20]), "block_reason"] == "model_stopped"  # not routed: nothing to follow
    # outside the routed sessions the rows are governance's own
    outside = [k for k in got.index if k[1] not in set(DATES[12:16])]
    pd.testing.assert_frame_equal(got.loc[outside], plain.loc[outside])
    off = route(active, eligible_signals(llm), *_no_stop(), mode="off", policy=POLICY)
    pd.testing.assert_frame_equal(governed_signals(per_model, active, POLICY, off).set_index(["ticker", "asof_date"]),
                                  plain)  # fmt: skip


def test_routed_flips_count_the_llms_own_changes_within_a_run_of_routed_sessions():
    per_model = model_signals(_forecasts(), horizon=1, single_models=["random_walk"], min_obs=5)
    active = pd.Series("ensemble", index=DATES)
    ups = _llm(DATES[5:10], tickers=("A",))
    downs = _llm(DATES[10:12], tickers=("A",), er=-0.02)
    later = _llm(DATES[20:22], tickers=("A",), er=-0.02)  # a second run: starts afresh
    llm = eligible_signals(pd.concat([ups, downs, later], ignore_index=True))
    r = route(active, llm, *_no_stop(), mode="always", policy=POLICY)
    got = governed_signals(per_model, active, POLICY, r).set_index(["ticker", "asof_date"]).loc["A"]
    assert list(got.loc[DATES[5:12], "flips"]) == [0, 0, 0, 0, 0, 1, 1]
    assert list(got.loc[DATES[20:22], "flips"]) == [0, 0]
    assert (got.loc[DATES[20:22], "direction"] == -1).all()


def _asof_state(decisions: pd.DataFrame, sessions) -> pd.Series:
    """Whether the last routing decision at or before each session is ``route`` (what the signal gate reads)."""
    right = decisions.rename(columns={"decision_date": "date"})[["date", "action"]]
    right = right.assign(date=pd.to_datetime(right["date"]).astype("datetime64[ns]"))
    left = pd.DataFrame({"date": pd.DatetimeIndex(sessions).astype("datetime64[ns]")})
    last = pd.merge_asof(left, right, on="date", direction="backward")
    return pd.Series(last["action"].eq("route").to_numpy(), index=sessions)


def test_a_resumed_run_writes_the_whole_historys_decisions_and_its_trail_says_which_sessions_are_routed():
    active = pd.Series("ensemble", index=DATES)
    active.iloc[8:14] = ""
    active.iloc[20:26] = ""
    signals = eligible_signals(_llm(DATES[10:24]))
    whole = route(active, signals, *_no_stop(), mode="all_stopped", policy=POLICY)
    actions = ["route_refused", "route", "unroute", "route", "route_refused", "unroute"]
    assert list(whole.decisions["action"]) == actions
    assert "no longer wanted" not in whole.decisions["reason"].iloc[2]  # it left a routed stretch
    assert "no longer wanted" in whole.decisions["reason"].iloc[5]  # it left a refusal
    for cut in (9, 12, 21):  # the refresh routes the sessions of its window after the stored state
        stored = whole.decisions[whole.decisions["decision_date"] <= DATES[cut]]
        part = resume_route(active.iloc[cut - 5 :], DATES[cut], stored, signals, *_no_stop(), "all_stopped", POLICY)
        want = whole.decisions[whole.decisions["decision_date"] > DATES[cut]].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.decisions.reset_index(drop=True), want)
        pd.testing.assert_series_equal(part.routed, whole.routed[DATES[cut - 5] :], check_names=False)


def test_a_signal_that_arrives_late_leaves_the_stored_trail_and_the_new_sessions_consistent():
    # the stored run saw no signal at session 10 yet (route_refused), the refresh's does: it must not drop the
    # route row of session 11, or the gate would read the stored refusal as the state of every later session
    active = pd.Series("ensemble", index=DATES)
    active.iloc[10:20] = ""
    late = eligible_signals(_llm(DATES[10:20]))
    early = late[late["date"] > DATES[10]]
    stored = route(active.iloc[:11], early, *_no_stop(), mode="all_stopped", policy=POLICY).decisions
    assert list(stored["action"]) == ["route_refused"]
    part = resume_route(active, DATES[10], stored, late, *_no_stop(), "all_stopped", POLICY)
    assert list(part.decisions["action"]) == ["route", "unroute"]
    assert part.decisions["decision_date"].iloc[0] == DATES[11]
    trail = pd.concat([stored, part.decisions], ignore_index=True)
    pd.testing.assert_series_equal(_asof_state(trail, DATES), part.routed, check_names=False)
    assert not part.routed[DATES[10]]  # the session decided before keeps the stored routing
    # in always mode after a stored unroute, the same
    stored = route(pd.Series("ensemble", index=DATES[:8]), late, *_no_stop(), mode="always", policy=POLICY).decisions
    assert stored.empty
    part = resume_route(pd.Series("ensemble", index=DATES), DATES[7], stored, late, *_no_stop(), "always", POLICY)
    pd.testing.assert_series_equal(_asof_state(part.decisions, DATES), part.routed, check_names=False)


def test_leaving_a_refusal_is_no_unroute_of_a_routed_book():
    active = pd.Series("ensemble", index=DATES)
    active.iloc[5:8] = ""
    r = route(active, eligible_signals(_llm(DATES[20:22])), *_no_stop(), mode="all_stopped", policy=POLICY)
    assert list(r.decisions["action"]) == ["route_refused", "unroute"]
    assert "no longer wanted" in r.decisions["reason"].iloc[1]
