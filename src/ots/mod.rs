//! Onetime Secret API client (placeholder; see issue 3).
