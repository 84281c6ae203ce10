{#- Which of a model's rows its data tests read: dbt's `where` test config, plus one placeholder.

      config: {where: "__forecasts_refresh_window__"}

    An incremental build of marts.forecasts (the daily refresh: `dbt build` without --full-refresh,
    with the model selected) rewrites only the origins of its refresh window, and the tests that
    carry the placeholder then read those rows; any other invocation (a full build, the weekly
    retrain, `dbt test` alone) reads every row. marts.forecasts holds ~4 M rows for the 20 default
    tickers, and a uniqueness test over all of them took most of a second of every refresh
    (docs/benchmarks.md). A rewritten row is tested when it is written; the rows kept were tested
    when they were. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__forecasts_refresh_window__' -%}
        {%- set incremental = 'model.pmx.forecasts' in selected_resources and not flags.FULL_REFRESH -%}
        {%- set where = forecasts_refresh_window(relation) if incremental else '' -%}
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

{#- The origins an incremental build of marts.forecasts rewrites: the new ones, and the recent ones
    whose target session may have arrived since (63 sessions are fewer than 120 days). -#}
{% macro forecasts_refresh_window(relation, column='asof_date') -%}
    {{ column }} >= (select max(asof_date) from {{ relation }}) - interval 120 day
{%- endmacro %}
