"""The paper-trading reads and the portfolio and governance checks' reads (ibis expressions) return what the
SQL they replaced returned, dtypes, NULLs and the row order a caller depends on included. The SQL is kept
here as the reference."""

from dataclasses import asdict
from types import SimpleNamespace

import pandas as pd
import pytest

from dagster_pmx.defs.governance import reads as governance
from dagster_pmx.defs.portfolio import reads as portfolio
from dagster_pmx.defs.refresh import NEVER
from dagster_pmx.defs.trading import ledger
from dagster_pmx.defs.trading import reads as trading
from dagster_pmx.lake import Lake
from dagster_pmx.resources import Warehouse
from python_models.trading.broker import Account, Order
from tests.dagster_pmx.read_checks import sql

SETUP = """
create schema intermediate; create schema ml;
create table intermediate.int_sessions as
    select d::date as date, row_number() over (order by d) as session_index
    from range(date '2021-01-01', date '2021-02-01', interval 1 day) t(d);
-- B has no close every fourth day; C has no price before the 10th and no row on the 20th to 22nd
create table intermediate.int_returns as
    select tk as ticker, date,
        case when tk = 'B' and day(date) % 4 = 0 then null else 10 + random() end as close,
        not (tk = 'B' and day(date) % 4 = 0) and not (tk = 'C' and day(date) < 10) as has_price
    from intermediate.int_sessions, (values ('A'), ('B'), ('C')) t(tk)
    where not (tk = 'C' and day(date) between 20 and 22);
create table ml.safe_sleeve as  -- stored newest first: the read orders it
    select date::timestamp_ns as date, case when day(date) < 3 then null else random() / 100 end as bond_return,
        random() as bond_share
    from intermediate.int_sessions order by date desc;

-- the ledger: barbell booked to the 20th, governed to the 25th (fields NULL here and there)
insert into marts.paper_nav
    select s, date, random() * 1000, random() * 1e5, 1e5 + random(),
        case when day(date) = 5 then null else random() / 100 end, random(), random(),
        'run-' || (day(date) > 15)::int, '2021-02-01 10:00'::timestamp
    from intermediate.int_sessions, (values ('governed'), ('barbell')) t(s)
    where day(date) <= case when s = 'barbell' then 20 else 25 end;
insert into marts.paper_positions  -- tickers stored out of order: the account keeps the stored order
    select n.strategy, n.date, tk, round(random() * 100), case when tk = 'B' and day(n.date) = 20 then null
        else 10 + random() end, random() * 1000, case when tk <> 'A' then n.run_id end, n.booked_at
    from marts.paper_nav n, (values ('B'), ('BOND'), ('A')) t(tk);
insert into marts.paper_orders
    select n.strategy, n.strategy || ':' || n.date || ':' || tk, n.date, tk, round(random() * 20) - 10,
        10 + random(), random() / 3, n.run_id, n.booked_at
    from marts.paper_nav n, (values ('C'), ('A'), ('BOND')) t(tk);
insert into marts.paper_fills
    select strategy, order_id, decision_date + 1, ticker, quantity, reference_price, quantity * reference_price,
        random(), 0.0, case when ticker = 'C' then 'cancelled' else 'filled' end,
        case when ticker = 'C' then 'no_price' end, run_id, booked_at
    from marts.paper_orders;
insert into marts.paper_cash
    select strategy, date, cash, random(), random(), random(), random(), cash, run_id, booked_at from marts.paper_nav;

create table marts.signals as
    select ticker, date, 5::integer as horizon, case when day(date) % 2 = 0 then 'm1' else 'm2' end as model,
        random() / 50 as expected_return, 0.05::double as forecast_std,
        case when day(date) = 7 then null else 0.4 + random() / 2 end as confidence,
        case when day(date) = 9 then null else random() > 0.3 end as tradable,
        case when random() > 0.7 then 'low_confidence' end as block_reason
    from intermediate.int_returns where ticker <> 'C';
insert into marts.signals
    select 'A', date, 5, 'garch', 0.01, 0.05, 0.9, true, null from intermediate.int_sessions where day(date) = 12;
create table marts.model_risk as  -- m1 has no row on the 3rd; active NULL on the 4th
    select m as model, date::timestamp_ns as date, random() as rolling_accuracy, random() > 0.8 as stopped,
        false as needs_retrain, case when day(date) = 4 then null else m = 'm1' or day(date) % 5 = 0 end as active
    from intermediate.int_sessions, (values ('m1'), ('m2')) t(m) where not (m = 'm1' and day(date) = 3);
-- D is never priced; barbell holds nothing risky on the 10th, 11th and 17th and decides nothing on the 10th
create table marts.allocations as
    select s as strategy, date, tk as ticker, case when day(date) % 6 = 0 then 0.0 else random() / 2 end as weight,
        'risky' as sleeve
    from intermediate.int_sessions, (values ('governed'), ('barbell')) t(s), (values ('A'), ('B'), ('C'), ('D')) u(tk)
    where not (s = 'barbell' and day(date) in (10, 11, 17)) and not (tk = 'D' and s = 'governed')
    union all
    select s, date, 'CASH', random(), 'safe' from intermediate.int_sessions, (values ('governed'), ('barbell')) t(s)
    where not (s = 'barbell' and day(date) = 10);
create table marts.drawdown_control as
    select s as strategy, date::timestamp_ns as date, 'normal' as state,
        (case when day(date) between 10 and 18 then 0.5 when day(date) > 25 then 0.0 else 1.0 end)::double as scale,
        0.0::double as drawdown
    from intermediate.int_sessions, (values ('governed'), ('barbell')) t(s);
"""

#: The SQL the portfolio checks ran (portfolio/checks.py's STALENESS_SQL and the drawdown-control gate's query).
STALENESS_SQL = """
    with stamped as (
        select r.ticker, r.date, s.session_index, r.has_price
        from intermediate.int_returns r
        join intermediate.int_sessions s on s.date = r.date
    ),

    last_price as (
        select
            ticker,
            date,
            session_index - max(case when has_price then session_index end) over (
                partition by ticker order by date rows between unbounded preceding and current row
            ) as sessions_since_price
        from stamped
    )

    select a.strategy, a.date, max(coalesce(l.sessions_since_price, 1000000)) as max_sessions_since_price
    from marts.allocations a
    left join last_price l on l.ticker = a.ticker and l.date = a.date
    where a.sleeve = 'risky' and a.weight <> 0
    group by a.strategy, a.date
"""
DRAWDOWN_SQL = """
    with risky as (
        select strategy, cast(date as date) as date, sum(abs(weight)) as gross
        from marts.allocations where sleeve = 'risky' group by all
    ),

    decided as (
        select distinct strategy, cast(date as date) as date from marts.allocations
    ),

    states as (
        select strategy, cast(date as date) as date, state, scale,
               lag(scale) over (partition by strategy order by date) as previous_scale
        from marts.drawdown_control
    )

    select s.strategy, s.date, s.state, s.scale, r.gross, d.date is null as undecided
    from states s
    left join risky r on r.strategy = s.strategy and r.date = s.date
    left join decided d on d.strategy = s.strategy and d.date = s.date
    where coalesce(r.gross, 0) > s.scale * ? + 1e-9
       or (s.previous_scale <> s.scale and d.date is null)
"""
#: The SQL the governance checks ran.
UNGOVERNED_SQL = """
    select s.ticker, s.date, s.model, s.confidence, r.stopped, r.active
    from marts.signals s
    left join marts.model_risk r on r.model = s.model and r.date = s.date
    where s.tradable and (r.model is null or r.stopped or not r.active or s.confidence < 0.55)
"""
UNGATED_SQL = """
    select a.date, a.ticker, a.weight, s.block_reason
    from marts.allocations a
    join marts.signals s on s.ticker = a.ticker and s.date = a.date
    where a.strategy = 'governed' and a.sleeve = 'risky' and a.weight <> 0 and not s.tradable
"""


def build(path, setup: str = "") -> Warehouse:
    with Lake.at(path).open() as con:
        con.execute("select setseed(0.125)")
        ledger.ensure_tables(con)
        con.execute(setup)
    return Warehouse(path=str(path))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build(tmp_path_factory.mktemp("trading_reads") / "w.ducklake", SETUP)


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """A warehouse whose ledger tables exist and hold nothing."""
    return build(tmp_path_factory.mktemp("empty_ledger") / "w.ducklake")


def by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, obj: str = "DataFrame") -> None:
    """assert_frame_equal, values and dtypes exactly."""
    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=obj)


# -- paper trading: the SQL of ledger.py and assets.py before the reads were ibis


def old_raw_closes(warehouse: Warehouse, market) -> pd.DataFrame:
    rows = sql(warehouse, "select ticker, date, close from intermediate.int_returns where close is not null")
    closes = rows.pivot(index="date", columns="ticker", values="close").reindex(market.returns.index)
    sleeve = sql(warehouse, "select date, bond_return from ml.safe_sleeve order by date")
    bond = pd.Series(sleeve["bond_return"].to_numpy(float), index=pd.DatetimeIndex(sleeve["date"]))
    bond = bond.loc[bond.first_valid_index() :] if bond.notna().any() else bond.iloc[:0]
    closes[ledger.BOND] = (ledger.BOND_BASE * (1.0 + bond.fillna(0.0)).cumprod()).reindex(closes.index)
    return closes


def old_state_reads(warehouse: Warehouse, strategy: str):
    nav = ledger.table("nav")
    last = sql(warehouse, f"select max(date) as d from {nav} where strategy = ?", [strategy])["d"].iloc[0]
    if pd.isna(last):
        return None
    last = pd.Timestamp(last)
    return (
        last,
        sql(warehouse, f"select nav, cash from {nav} where strategy = ? and date = ?", [strategy, last]),
        sql(
            warehouse,
            f"select ticker, quantity, price from {ledger.table('positions')} where strategy = ? and date = ?",
            [strategy, last],
        ),
        sql(
            warehouse,
            f"select * from {ledger.table('orders')} where strategy = ? and decision_date = ? order by ticker",
            [strategy, last],
        ),
    )


def old_load_state(warehouse: Warehouse, strategy: str, closes: pd.DataFrame) -> ledger.State:
    """The ledger state as it was read before, on the SQL above."""
    reads = old_state_reads(warehouse, strategy)
    if reads is None:
        return ledger.State(last=None)
    last, nav, held, orders = reads
    marks = closes.loc[last].dropna().to_dict() if last in closes.index else {}
    marks.update(dict(zip(held["ticker"], held["price"], strict=False)))
    open_orders = tuple(
        Order(
            order_id=o.order_id,
            strategy=strategy,
            decision_date=pd.Timestamp(o.decision_date),
            ticker=o.ticker,
            quantity=float(o.quantity),
            reference_price=float(o.reference_price),
            target_weight=float(o.target_weight),
        )
        for o in orders.itertuples()
    )
    account = Account(
        cash=float(nav["cash"].iloc[0]),
        positions=dict(zip(held["ticker"], held["quantity"], strict=False)),
        marks=marks,
    )
    return ledger.State(last=last, account=account, open_orders=open_orders, nav=float(nav["nav"].iloc[0]))


def old_ledger(warehouse: Warehouse, strategy: str) -> dict[str, pd.DataFrame]:
    frames = {
        name: sql(
            warehouse, f"select * from {ledger.table(name)} where strategy = ? order by {ledger.KEYS[name]}", [strategy]
        )
        for name in ledger.SCHEMAS
    }
    for frame in frames.values():
        for column in ("date", "decision_date"):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column])
    return frames


def test_the_price_marks_and_raw_closes_equal_the_sql(warehouse):
    closes, sleeve = trading.price_marks(warehouse)
    expected = sql(warehouse, "select ticker, date, close from intermediate.int_returns where close is not null")
    pd.testing.assert_frame_equal(closes, expected, check_exact=True)
    expected = sql(warehouse, "select date, bond_return from ml.safe_sleeve order by date")
    assert expected["bond_return"].isna().any()
    pd.testing.assert_frame_equal(sleeve, expected, check_exact=True)
    sessions = pd.DatetimeIndex(sql(warehouse, "select date from intermediate.int_sessions order by date")["date"])
    market = SimpleNamespace(returns=pd.DataFrame(index=sessions[2:]))  # raw_closes reads only the index
    pd.testing.assert_frame_equal(
        ledger.raw_closes(warehouse, market), old_raw_closes(warehouse, market), check_exact=True
    )
    # from a start on (a refresh's): the same marks on every session from it, the bond's level on every one
    start = sessions[-3]
    got, old = ledger.raw_closes(warehouse, market, start), old_raw_closes(warehouse, market)
    for date in sessions[sessions >= start]:
        pd.testing.assert_series_equal(got.loc[date].dropna(), old.loc[date].dropna(), check_exact=True)
    pd.testing.assert_series_equal(got[ledger.BOND], old[ledger.BOND], check_exact=True)
    assert got.loc[got.index < start].drop(columns=ledger.BOND).isna().all().all()


@pytest.mark.parametrize("strategy", ["barbell", "governed"])
def test_the_booked_state_equals_the_sql(warehouse, strategy):
    last, nav, held, orders = old_state_reads(warehouse, strategy)
    state = trading.booked_state(warehouse, strategy)
    assert state is not None
    assert pd.Timestamp(state.nav["date"].iloc[0]) == last
    pd.testing.assert_frame_equal(state.nav[["nav", "cash"]], nav, check_exact=True)
    # the account's positions keep the stored order: compare without sorting
    assert held["price"].isna().any() or strategy == "governed"
    pd.testing.assert_frame_equal(state.held, held, check_exact=True)
    columns = ["order_id", "decision_date", "ticker", "quantity", "reference_price", "target_weight"]
    pd.testing.assert_frame_equal(state.orders, orders[columns], check_exact=True)

    closes = old_raw_closes(warehouse, SimpleNamespace(returns=pd.DataFrame(index=pd.DatetimeIndex([last]))))
    got, old = (
        ledger.state_of(strategy, trading.booked_state(warehouse, strategy), closes),
        old_load_state(warehouse, strategy, closes),
    )
    assert (got.last, got.nav, got.account.cash) == (old.last, old.nav, old.account.cash)
    assert list(got.account.positions.items()) == list(old.account.positions.items())  # the order it sums in
    pd.testing.assert_series_equal(pd.Series(got.account.marks), pd.Series(old.account.marks))  # NULL marks: NaN
    pd.testing.assert_frame_equal(
        pd.DataFrame([asdict(o) for o in got.open_orders]), pd.DataFrame([asdict(o) for o in old.open_orders])
    )


def test_a_strategy_with_nothing_booked_has_no_state(warehouse, empty):
    for wh in (warehouse, empty):
        assert old_state_reads(wh, "nothing") is None
        assert trading.booked_state(wh, "nothing") is None
        assert ledger.state_of("nothing", trading.booked_state(wh, "nothing"), pd.DataFrame()) == old_load_state(
            wh, "nothing", pd.DataFrame()
        )


@pytest.mark.parametrize("strategy", ["barbell", "governed", "nothing"])
def test_the_ledger_equals_the_sql(warehouse, empty, strategy):
    for wh in (warehouse, empty):
        expected = old_ledger(wh, strategy)
        got = trading.ledger_rows(wh, strategy, ledger.KEYS)
        assert list(got) == list(ledger.SCHEMAS)
        book = ledger.read_ledger(wh, strategy).tables()
        for name, frame in expected.items():
            assert_same(got[name], frame, obj=name)
            assert_same(book[name], frame, obj=name)


def test_the_booked_strategies_and_the_summary_equal_the_sql(warehouse, empty):
    for wh in (warehouse, empty):
        query = f"select distinct strategy from {ledger.table('nav')} order by 1"
        assert trading.booked_strategies(wh) == sql(wh, query)["strategy"].tolist()
        assert ledger.booked_strategies(wh) == sql(wh, query)["strategy"].tolist()
        nav, counts = trading.ledger_summary(wh, ledger.SCHEMAS)
        expected = sql(wh, f"select strategy, date, nav from {ledger.table('nav')} order by date")
        assert nav["date"].is_monotonic_increasing
        # both orders are by date only; each strategy's rows (what the asset reads) are in date order in both
        assert_same(by(nav, ["date", "strategy"]), by(expected, ["date", "strategy"]))
        for strategy, rows in expected.groupby("strategy"):
            pd.testing.assert_frame_equal(
                nav[nav["strategy"] == strategy].reset_index(drop=True), rows.reset_index(drop=True)
            )
        assert counts == {
            name: int(sql(wh, f"select count(*) as n from {ledger.table(name)}")["n"].iloc[0])
            for name in ledger.SCHEMAS
        }
    assert trading.booked_strategies(warehouse) == ["barbell", "governed"]


# -- the portfolio checks


def test_the_signals_and_allocations_the_expectations_validate_equal_the_sql(warehouse):
    expected = sql(warehouse, "select * from marts.signals")
    assert str(expected["tradable"].dtype) == "boolean" and expected["block_reason"].isna().any()
    pd.testing.assert_frame_equal(portfolio.stored_signals(warehouse), expected, check_exact=True)
    for after in (NEVER, pd.Timestamp("2021-01-20")):
        expected = sql(warehouse, "select * from marts.allocations where date > ?", [after])
        pd.testing.assert_frame_equal(portfolio.allocations_after(warehouse, after), expected, check_exact=True)


def test_the_price_staleness_equals_the_sql(warehouse):
    expected = sql(warehouse, STALENESS_SQL)
    assert (expected["max_sessions_since_price"] == 1_000_000).any()  # C before its first price, D never priced
    assert expected["max_sessions_since_price"].between(1, 999_999).any()  # B's missing closes
    keys = ["strategy", "date"]
    pd.testing.assert_frame_equal(by(portfolio.price_staleness(warehouse), keys), by(expected, keys), check_exact=True)
    after = pd.Timestamp("2021-01-20")  # the decisions a daily refresh appended: the same rows, cut
    later = expected[expected["date"] > after]
    assert 0 < len(later) < len(expected)
    got = portfolio.price_staleness(warehouse, after)
    pd.testing.assert_frame_equal(by(got, keys), by(later, keys), check_exact=True)


@pytest.mark.parametrize("max_gross", [1.0, 1.5, 3])
def test_the_drawdown_control_violations_equal_the_sql(warehouse, max_gross):
    expected = by(sql(warehouse, DRAWDOWN_SQL, [max_gross]), ["strategy", "date"])
    if max_gross == 1.5:  # too much gross, NULL gross (nothing decided) on a session where the scale changed
        assert expected["gross"].isna().any() and expected["undecided"].any() and (~expected["undecided"]).any()
    got = portfolio.drawdown_control_violations(warehouse, max_gross)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)  # in (strategy, date) order
    for after in sorted(expected["date"].unique())[:2]:  # the sessions after one violation: the rest, cut
        later = expected[expected["date"] > after].reset_index(drop=True)
        got = portfolio.drawdown_control_violations(warehouse, max_gross, pd.Timestamp(after))
        pd.testing.assert_frame_equal(got, later, check_exact=True)


# -- the governance checks


def assert_same_in_date_and_ticker_order(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """``got`` is in (date, ticker) order, the order the reads give, and holds ``expected``'s rows exactly.
    Rows that tie on both (A's garch signal beside m1's on the 12th) may come in either order, from the
    read and from the SQL alike (DuckDB's parallel joins), so the rows are compared in the order of all
    their columns."""
    keys = ["date", "ticker"]
    pd.testing.assert_frame_equal(got[keys], by(got, keys)[keys])
    pd.testing.assert_frame_equal(by(got, list(got.columns)), by(expected, list(got.columns)), check_exact=True)


def test_the_governance_violations_equal_the_sql(warehouse):
    expected = sql(warehouse, UNGOVERNED_SQL)
    assert expected["stopped"].isna().any() and (expected["model"] == "garch").any()  # no model_risk row
    assert_same_in_date_and_ticker_order(governance.ungoverned_signals(warehouse), expected)
    expected = sql(warehouse, UNGATED_SQL)
    assert len(expected) and expected["block_reason"].isna().any()
    assert_same_in_date_and_ticker_order(governance.ungated_allocations(warehouse), expected)


def test_frame_gives_a_varchar_without_values_as_duckdb_does(empty):
    expected = sql(empty, f"select * from {ledger.table('fills')}")
    pd.testing.assert_frame_equal(trading.ledger_rows(empty, "nothing", {"fills": "order_id"})["fills"], expected)
