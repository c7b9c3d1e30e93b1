//! The backends behind the store (sled, for now in one file).

mod sled;

pub use self::sled::*;
