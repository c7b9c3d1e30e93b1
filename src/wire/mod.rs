//! What the adapters share about talking over the wire: ids made safe for a URL path,
//! and the one reader of a platform's wait hints.

pub mod hints;
pub mod request_path;
