//! In-memory Onetime Secret compatible API server (placeholder; see issue 3).
