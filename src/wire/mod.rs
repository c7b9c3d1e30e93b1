//! What the adapters share about talking over the wire: ids made safe for a URL path,
//! the one reader of a platform's wait hints, how old a signed request may be, the
//! serving of inbound HTTP, and this process's name among the replicas.

pub mod freshness;
pub mod hints;
pub mod http;
pub mod instance;
pub mod panic;
pub mod request_path;
