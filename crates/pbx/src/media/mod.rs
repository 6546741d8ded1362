//! Media in the daemon: the pass-through [`Relay`] for bridged calls, and the
//! [`EngineHost`] that runs the media engine for legs that end in the PBX. Each is one
//! thread for all its streams, outside the SIP event loop.

mod engine;
pub mod moh;
pub mod moh_files;
mod relay;
mod tap;

pub use engine::{Command as EngineCommand, EngineHost, EngineStats, MediaEvent};
pub use relay::{
    Direction, Lent, MediaKind, MediaStream, PortPool, Relay, RelayStats, StreamSide, Targets,
    EVENTS,
};
pub use tap::TappedEvent;
