//! The ports: every way the desk reaches the outside world, as traits the adapters
//! implement (`Source`, `Publisher`, `Surface`, `Translator`), and the ways the outside world reaches
//! the desk, as traits the runtime implements for the adapters (`AgentDesk` from chat,
//! `Intake` from the webhook). Each trait's doc comment is its contract — what a caller may repeat, and
//! what is durable by the time a call returns. Async methods go through `async_trait`,
//! the one boxing helper, so adapters write plain `async fn`s.

mod clock;
mod delivery;
mod desk;
mod intake;
mod language;
mod source;
mod store;
mod surface;
pub mod tally;
mod translator;

pub use clock::{Clock, SystemClock};
pub use delivery::DeliveryError;
pub use desk::{
    ActError, AgentDesk, ChartAsk, ChartFile, DraftToTranslate, DrawnCharts, IncidentPage,
    OpenTickets, StoreFailure, NO_TRANSLATION,
};
pub use intake::{Intake, Received};
pub use language::LanguageDetector;
pub use source::{
    Batch, MentionStream, Published, Publisher, ReplyRequest, Source, StreamError, StreamEvent,
};
pub use store::{
    count_of, hash_key, heads_of, tickets_of_author, ActOutcome, AuditPos, BackendError, Claimed,
    Decide, Delivery, Due, Fence, IncidentDecide, Ingested, Job, Judge, Lease, LeaseState, Mark,
    OpenPriority, SharedStore, Slots, Store, StoreError, DESK_JOBS, SEEN_EVENTS_FOR,
};
pub use surface::{urgency, with_urgency, Surface, Urgency};
pub use translator::{TranslateError, Translated, Translator};
