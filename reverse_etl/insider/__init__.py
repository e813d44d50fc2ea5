"""Everything that speaks Insider One: rules, payloads, modes, HTTP, segments, pull, emulator."""
