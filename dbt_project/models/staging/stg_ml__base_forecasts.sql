{{ config(tags=['post_forecast']) }}

{{ stage_forecasts(source('ml', 'base_forecasts')) }}
