"""First-party segment uploads (insider-api.md §6): file server, upload, callback, the sync mode."""
