{#- Which of a model's rows its data tests read: dbt's `where` test config, with two additions.

    1. A build that rewrote some rows of an incremental (ticker, date) model tests the rows it rewrote.
       The models whose config carries `meta: {tests_read: rows_this_build_rewrote}` (dbt_project.yml)
       stamp every row they write with the build's start, refreshed_at (macros/incremental.sql), and
       their tests in a `dbt build` that selects the model read the rows dated from the first date the
       build wrote on: every row it wrote, and every stored row sharing a date (so a key written twice
       is still found). A whole build stamps every row, so its tests read every row; `dbt test` alone,
       or a build that does not select the model, reads every row too. A daily refresh that adds one
       session rewrites that session of marts.features (tests/e2e/test_pipeline.py), and its tests read
       that date's rows instead of all of them. A test with a `where` of its own keeps it.

    2. The marker `where: "__forecasts_refresh_window__"` on a test of marts.forecasts, a view over the
       forecast tables and the realised returns. A build that selects the view without --full-refresh
       (the daily refresh) changed only the rows of its refresh window: the new origins, and the recent
       ones whose target session may have arrived (63 sessions are fewer than 120 days); the marked
       tests then read those rows. Any other invocation (a full build, the weekly retrain, `dbt test`
       alone) reads every row. marts.forecasts holds ~4 M rows for the 20 default tickers, and a
       uniqueness test over all of them took most of a second of every refresh (docs/benchmarks.md).

    A rewritten row is tested when it is written; the rows kept were tested when they were. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__forecasts_refresh_window__' -%}
        {%- set refresh = 'model.pmx.forecasts' in selected_resources and not flags.FULL_REFRESH -%}
        {%- set where = forecasts_refresh_window() if refresh else '' -%}
    {%- elif not where -%}
        {%- set where = rows_this_build_rewrote(relation) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {% do return(filtered) %}
    {%- else -%}
        {% do return(relation) %}
    {%- endif -%}
{%- endmacro %}

{#- The origins a daily refresh changed in marts.forecasts: the new ones, and the recent ones whose target
    session may have arrived since (63 sessions are fewer than 120 days). The newest origin is read from the
    single models' table when the test compiles (~0.03 s at 100 tickers) and written in as a date: DuckDB
    then filters the view's tables while it scans them, where a scalar subquery over the view would compute
    the whole view first (0.81 against 0.31 s on the default data: benchmarks/forecasts_view.py). -#}
{% macro forecasts_refresh_window() -%}
    {%- set single_models = source('ml', 'base_forecasts') -%}
    {%- set stored = load_relation(single_models) if execute else none -%}
    {%- set newest = run_query('select max(asof_date)::date from ' ~ single_models).columns[0].values()[0] if stored else none -%}
    {%- if newest is none -%}
    asof_date >= (select max(asof_date) from {{ single_models }}) - interval 120 day
    {%- else -%}
    asof_date >= date '{{ newest }}' - interval 120 day
    {%- endif -%}
{%- endmacro %}

{#- The rows of `relation` from the first date this build wrote on, when the test's model opts in and
    this `dbt build` builds it; otherwise '' (every row). -#}
{% macro rows_this_build_rewrote(relation) -%}
    {%- if not execute or flags.WHICH != 'build' or not model.attached_node -%}
        {{ return('') }}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) -%}
    {%- if tested is none or tested.unique_id not in selected_resources
          or (tested.config.meta or {}).get('tests_read') != 'rows_this_build_rewrote' -%}
        {{ return('') }}
    {%- endif -%}
    {{ return('date >= (select min(date) from ' ~ relation ~ ' where refreshed_at = ' ~ refreshed_at() ~ ')') }}
{%- endmacro %}
