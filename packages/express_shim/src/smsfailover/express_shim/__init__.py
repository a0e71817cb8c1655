"""The smsfailover origin: the Starlette app standing in for the Express backend.

python -m smsfailover.express_shim serve [--host 127.0.0.1] [--port 8000]     run it
python -m smsfailover.express_shim migrate                                  apply database migrations

app.create_app(config, extra_routes=...)   the app; its services are on app.state.services
config.OriginConfig.from_env()             CONTRACT §5's variables
storage/                                   SQLite (default) and PostgreSQL behind core's SqlExecutor; migrations
ledger/                                    the idempotency ledger's origin side: local first, the edge's answer final,
                                           the failure detector, reconcile, the two-phase failover switch
workspace_settings, mirror_push            settings with their outbox, pushed to the edge mirror
edge_sync, delivery_updates                edge-sent messages copied in; Twilio status callbacks applied
failover_status, window_stats, probes      the status route; origin_metrics: /metrics
"""
