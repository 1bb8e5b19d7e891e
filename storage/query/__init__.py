"""Answering Analytics Engine SQL (SPEC §3.3): `aesql` parses, checks and runs it on the
log (`LocalEngine`) and writes it for ClickHouse; `cloudflare` asks Cloudflare's SQL API;
`mirror`, `mirror_process` and `mirror_server` keep the columnar copy that answers long
ranges; `router` picks the source (auto, local, cloudflare).

In: a query's text and params. Out: a `QueryResult`, or the engine's own refusal."""
