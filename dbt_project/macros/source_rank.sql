{#- Source precedence for a (ticker, date) several sources carry: the user's files, then a
    market-data API's OHLCV (in a fixed order, so two APIs never tie), then the bundled OHLCV,
    then close-only. One place, so staging and the data-quality mart agree on who wins. -#}
{% macro source_rank(column) -%}
    case {{ column }}
        when 'csv' then 1
        when 'yahoo' then 2
        when 'alphavantage' then 3
        when 'finnhub' then 4
        when 'arch' then 5
        when 'skfolio' then 6
        else 9
    end
{%- endmacro %}
