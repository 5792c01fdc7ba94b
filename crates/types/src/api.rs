//! Docker Engine API models (filled in by the engine/api work).
