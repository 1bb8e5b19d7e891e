"""The relay Worker (SPEC §6) as package data: its source (`src/index.js`), its config
(`wrangler.jsonc`) and the versions it pins (`package.json`) ship with the Python package,
so that `analytics-worker dev` runs it from an installed package as from a clone. This
directory is the relay's npm project (its tests, `npm run deploy`); nothing in it is Python
but this file."""
