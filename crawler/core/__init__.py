"""Pure stages: no network, no disk, no event loop (a test enforces it).

urls (WHATWG parsing, page normalisation, match modes), claims (rows to claims), decode (bytes
to text, the charset order), extract (HTML to a `Page`), directives (meta robots, X-Robots-Tag,
canonical), robots (robots.txt rules), verdict (a claim and a fetched page to a `Result`),
retry (what a failed attempt means).
"""
