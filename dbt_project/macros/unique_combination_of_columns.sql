{#- dbt_utils' unique_combination_of_columns on DuckDB, within the memory dbt's DuckDB is given.

    dbt_utils groups the relation by the key columns: on marts.forecasts at 500 tickers (~110 M rows keyed
    by two strings, a date and a number) DuckDB's aggregate ran out of memory at 1.25GB and at 2GB ("could
    not allocate block"), threads=1 included; it passed at 3GB (docs/scaling.md). Grouping by one 64-bit
    hash of the key spills, and passed at 1.25GB. A hash alone could call two keys that collide a duplicate,
    so only the rows whose hash repeats are grouped again by the key itself: the same failing keys as
    dbt_utils' query (NULLs group together in both), for the cost of a second scan. dbt_project.yml's
    `dispatch` puts this macro before dbt_utils' own. -#}
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
