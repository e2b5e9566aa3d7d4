"""Pure stages: no network, no disk, no event loop (tests/test_layout.py enforces it).

In the order data flows: claims (rows to claims), guard (which addresses may be fetched),
robots (robots.txt rules), retry (what a failed attempt means), decode (bytes to text, the
charset order), extract (HTML to a `Page`), urls (WHATWG parsing, page normalisation, match
modes), directives (meta robots, X-Robots-Tag, canonical), verdict (a claim and a fetched page
to a `Result`), render_gate (does a page need a browser?), history (the monitoring fold:
results to states and events), anchors and figures (the numbers of a report).
"""
