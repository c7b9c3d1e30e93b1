//! What the adapters share about talking over the wire: ids made safe for a URL path,
//! the one reader of a platform's wait hints, how old a signed request may be, and the
//! serving of inbound HTTP.

pub mod freshness;
pub mod hints;
pub mod http;
pub mod panic;
pub mod request_path;
