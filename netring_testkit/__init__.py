"""netring_testkit — the pytest plugin of netring (placeholder until the plugin issue lands)."""
