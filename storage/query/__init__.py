"""Answering Analytics Engine SQL (SPEC §3.3): `aesql` parses, checks and runs it on the
log (`LocalEngine`) and writes it for ClickHouse; `cloudflare` asks Cloudflare's SQL API;
`mirror` and `mirror_process` keep the columnar copy that answers long ranges; `router`
picks the source (auto, local, cloudflare).

In: a query's text and params. Out: a `QueryResult`, or the engine's own refusal."""
