"""One module per page action; each handler takes (ctx, params) and returns the
result Struct, or an awaitable of it when it must wait (prompt, card, network)."""
