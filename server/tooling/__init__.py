"""Partner-side tools shipped with the sandbox: `stealth listen` and `stealth trigger` (like Stripe's CLI)."""
