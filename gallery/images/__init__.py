"""Image work without models: reading and checking (decode), the sandbox's drawings (sandbox),
metadata written into downloads (metadata)."""
