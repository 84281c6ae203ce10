{#- dbt_utils' unique_combination_of_columns on DuckDB, within the memory dbt's DuckDB is given.

    dbt_utils groups the relation by the key columns. On marts.forecasts at 500 tickers (a view over
    ~110 M single-model rows and the ensembles', keyed by two strings, a date and a number) that aggregate
    ran out of DuckDB memory in the run's build at 1.25GB and 2GB ("could not allocate block"); on synthetic
    tables of that size (~163 M rows) it did so alone at 1.25GB and 3GB, and with one thread. Grouped by
    one 64-bit hash of the key, the aggregate spills and the test passed at 1.25GB
    (benchmarks/post_forecast_memory.py, docs/benchmarks.md). A hash alone could call two keys that collide
    a duplicate, so only the rows whose hash repeats are grouped again by the key itself: the same failing
    keys as dbt_utils' query (NULLs group together in both), for the cost of a second scan.
    dbt_project.yml's `dispatch` puts this macro before dbt_utils' own, for every uniqueness test. -#}
{% macro duckdb__test_unique_combination_of_columns(model, combination_of_columns, quote_columns=false) %}
{%- set column_list = [] -%}
{%- for column in combination_of_columns -%}
    {%- do column_list.append(adapter.quote(column) if quote_columns else column) -%}
{%- endfor -%}
{%- set columns_csv = column_list | join(', ') -%}

with repeated_hashes as (
    select hash({{ columns_csv }}) as key_hash
    from {{ model }}
    group by key_hash
    having count(*) > 1
),

validation_errors as (
    select
        {{ columns_csv }}
    from {{ model }}
    where hash({{ columns_csv }}) in (select key_hash from repeated_hashes)
    group by {{ columns_csv }}
    having count(*) > 1
)

select * from validation_errors
{% endmacro %}
