{#- Incremental refresh of the per-(ticker, date) models.

Every incremental model stamps its rows with refreshed_at, the start of the dbt run that
wrote them. On an incremental run a model finds, per ticker, the first date of any parent
row written after its own latest refreshed_at (so a run that failed half-way is caught up
by the next one), recomputes every date from there on, reads `lookback` sessions before
it for its trailing windows, and replaces those rows (delete+insert on ticker, date).
`reach_back` moves the recomputed range back for models that look forward (targets).
`across_tickers` recomputes the range for every ticker: for cross-sectional features and
for anything joined from the market index.

Rows that disappear from raw.prices are not deleted downstream: run with --full-refresh.
-#}

{#- The run's timestamp, written to every row as refreshed_at. -#}
{% macro refreshed_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- True on an incremental run of a table that already has refreshed_at (a table built
    before incremental refresh existed is rebuilt whole once, gaining the column). -#}
{% macro pmx_incremental() -%}
    {%- if not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {{ return('refreshed_at' in columns) }}
{%- endmacro %}

{#- The recompute plan of the current model: returns {'sql': a query of (ticker, from_date,
    input_from), 'from_date': and 'input_from': the earliest of each as a SQL literal, or
    none when nothing changed}. The literals let DuckDB prune scans before the windows. -#}
{% macro refresh_bounds(parents, lookback=0, reach_back=0, across_tickers=false) -%}
    {%- set sessions = ref('int_sessions') -%}
    {%- if not pmx_incremental() -%}
        {{ return({'sql': 'select null::varchar as ticker, null::date as from_date, null::date as input_from where false', 'incremental': false}) }}
    {%- endif -%}
    {%- set watermark = run_query("select coalesce(max(refreshed_at), timestamp '0001-01-01') from " ~ this).columns[0].values()[0] -%}
    {%- set sql -%}
        with changed as (
            {% for parent in parents %}
            select ticker, min(date) as changed_from
            from {{ parent }}
            where refreshed_at > cast('{{ watermark }}' as timestamp)
            group by ticker
            {{ "union all" if not loop.last }}
            {% endfor %}
        ),

        first_change as (
            select {{ "null::varchar" if across_tickers else "ticker" }} as ticker, min(changed_from) as changed_from
            from changed
            {{ "" if across_tickers else "group by ticker" }}
        ),

        sessions as (
            select date, session_index from {{ sessions }}
        ),

        final as (
            select
                first_change.ticker,
                output_session.date as from_date,
                coalesce(input_session.date, date '0001-01-01') as input_from
            from first_change
            inner join sessions as changed_session on changed_session.date = first_change.changed_from
            inner join sessions as output_session
                on output_session.session_index = greatest(changed_session.session_index - {{ reach_back }}, 1)
            left join sessions as input_session
                on input_session.session_index = changed_session.session_index - {{ reach_back + lookback }}
        )

        select * from final
    {%- endset -%}
    {%- set earliest = run_query("select min(from_date), min(input_from) from (" ~ sql ~ ")").rows[0] -%}
    {{ return({
        'sql': sql,
        'incremental': true,
        'across_tickers': across_tickers,
        'from_date': none if earliest[0] is none else "date '" ~ earliest[0] ~ "'",
        'input_from': none if earliest[1] is none else "date '" ~ earliest[1] ~ "'",
    }) }}
{%- endmacro %}

{#- Restricts an input relation (aliased `alias`) to the rows a model must read: for each
    changed ticker, its dates from input_from on. Renders nothing on a full build. -#}
{% macro incremental_input(alias, bounds, column='input_from') -%}
    {%- if bounds.incremental -%}
        {%- if bounds[column] is none -%}
            where false
        {%- elif bounds.across_tickers -%}
            where {{ alias }}.date >= {{ bounds[column] }}
        {%- else -%}
            semi join bounds on bounds.ticker = {{ alias }}.ticker and {{ alias }}.date >= bounds.{{ column }}
            where {{ alias }}.date >= {{ bounds[column] }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- A model's last statement: every column of CTE `cte`, stamped with refreshed_at, restricted
    on an incremental run to the rows it recomputes (from from_date on). -#}
{% macro select_refreshed_rows(cte, bounds) -%}
select {{ cte }}.*, {{ refreshed_at() }} as refreshed_at
from {{ cte }} as {{ cte }}
{{ incremental_input(cte, bounds, column='from_date') }}
{%- endmacro %}
