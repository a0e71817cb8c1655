"""The smsfailover edge: the Cloudflare Python Worker that sends when the origin cannot.

    config       EdgeConfig from the Worker's vars and secrets
    d1           D1Executor: core's SqlExecutor over the D1 binding
    js_fetch     JsFetchPoster: core's HttpPoster over the Workers fetch API
    mirror       the settings mirror and the sync feed (edge-only tables, migrations/0002_edge.sql)
    routing      a tiny method + path router returning core's ApiResponse
    service_api  the service-token routes the origin uses (ledger, sync, settings mirror)
    reconcile    the origin's pushed records merged shard by shard: marks kept, only real double sends counted
    app          EdgeApp: MessageApi (endpoint "edge") + service routes + health + 404/405 + the cron purge
    bridge       JS Request <-> ApiRequest / ApiResponse
    worker       the per-isolate glue entry.py calls; each request's work runs to its end (ctx.waitUntil)

Everything but `bridge`, `d1`, `js_fetch` and `worker` is plain Python and runs under CPython in the tests.
"""
