"""How tokens are chosen: the one request (`request`), sampling (`sampling`), structured output (`structured`,
`schema_check`), tool calls and their model-specific formats (`tools`, `tool_formats`), lookup decoding
(`speculative`) and chat messages (`messages`).

Floor 3 of the runtime (docs/ARCHITECTURE.md, section 2b): imports the floors below, never a backend.
"""
